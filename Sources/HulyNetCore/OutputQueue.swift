/// A state machine's outputs waiting for its I/O shell: carried out in order, including those
/// added while they are carried out (the shell's reactions call back into the machine, which only
/// appends: the drain under way takes them, a nested drain returns at once).
///
/// Confined to the thread that owns the machine (so its accesses need no dynamic exclusivity
/// checks, which would cost on every message).
public final class OutputQueue<Output> {
    /// Where the machine writes (`into: &queue.items`).
    @exclusivity(unchecked) public var items: [Output] = []
    @exclusivity(unchecked) @usableFromInline var draining = false
    /// The storage of the batch being carried out, kept between drains (two buffers take turns:
    /// no allocation per message).
    @exclusivity(unchecked) @usableFromInline var spare: [Output] = []

    public init() {}

    @inlinable
    public func drain(_ carryOut: (Output) -> Void) {
        guard !draining else { return }
        draining = true
        defer { draining = false }
        // Outputs are moved out one by one (reversed, then popped), never copied: each holds
        // arrays whose retain and release would cost on every message. What carrying them out
        // appends comes in the next round, after them, in order.
        var batch: [Output] = []
        swap(&batch, &spare)
        while !items.isEmpty {
            swap(&batch, &items)
            batch.reverse()
            while let output = batch.popLast() { carryOut(output) }
        }
        swap(&batch, &spare)
    }
}
