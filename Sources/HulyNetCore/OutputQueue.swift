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

    public init() {}

    @inlinable
    public func drain(_ carryOut: (Output) -> Void) {
        guard !draining else { return }
        draining = true
        defer { draining = false }
        var index = 0
        while index < items.count {
            let output = items[index]
            index += 1
            carryOut(output)
        }
        items.removeAll(keepingCapacity: true)
    }
}
