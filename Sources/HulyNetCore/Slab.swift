/// A table that picks the keys of its entries: each key names a slot and the slot's generation,
/// so finding, adding and removing an entry is an index into an array, with no hashing. Keys of
/// removed entries never find the entry that reuses their slot (its generation moved on), so a
/// late answer to a finished request or call is ignored, as with any unknown key. The coordinator
/// keeps its requests in flight and its calls here: they are touched several times per
/// forwarded request.
///
/// Slots stay allocated once used (they are reused, not given back): the table is as large as
/// the most entries it held at once, which the in-flight and client limits bound.
public struct Slab<Element> {
    struct Slot {
        /// Odd while the slot holds an entry, even while free; a key carries how many times the
        /// slot was taken before (generation / 2), so that a fresh table's keys are 1, 2, 3...
        var generation: UInt32
        var element: Element?
    }

    var slots: [Slot] = []
    var free: [UInt32] = []
    public private(set) var count = 0

    public init() {}

    public var isEmpty: Bool { count == 0 }

    /// Adds an entry; returns its key (never 0).
    public mutating func insert(_ element: Element) -> UInt64 {
        let index: UInt32
        if let reused = free.popLast() {
            index = reused
            slots[Int(index)].generation &+= 1
            slots[Int(index)].element = element
        } else {
            index = UInt32(slots.count)
            slots.append(Slot(generation: 1, element: element))
        }
        count += 1
        return Self.key(index: index, generation: slots[Int(index)].generation)
    }

    /// The entry of `key`, nil if it is not (or no longer) here.
    public subscript(key: UInt64) -> Element? {
        guard let index = slotIndex(key) else { return nil }
        return slots[index].element
    }

    /// Removes the entry of `key` and returns it; nil if it is not (or no longer) here.
    @discardableResult
    public mutating func removeValue(forKey key: UInt64) -> Element? {
        guard let index = slotIndex(key) else { return nil }
        let element = slots[index].element
        slots[index].element = nil
        slots[index].generation &+= 1
        free.append(UInt32(index))
        count -= 1
        return element
    }

    public mutating func removeAll() {
        for index in slots.indices where slots[index].generation & 1 == 1 {
            slots[index].element = nil
            slots[index].generation &+= 1
            free.append(UInt32(index))
        }
        count = 0
    }

    func slotIndex(_ key: UInt64) -> Int? {
        let index = Int(truncatingIfNeeded: key & 0xFFFF_FFFF) &- 1
        guard index >= 0, index < slots.count, key >> 63 == 0,
              slots[index].generation == UInt32(truncatingIfNeeded: key >> 32) << 1 | 1 else { return nil }
        return index
    }

    static func key(index: UInt32, generation: UInt32) -> UInt64 {
        UInt64(generation >> 1) << 32 | UInt64(index &+ 1)
    }
}

extension Slab: Sequence {
    /// The entries with their keys, in slot order.
    public func makeIterator() -> AnyIterator<(key: UInt64, value: Element)> {
        var index = 0
        let slots = self.slots
        return AnyIterator {
            while index < slots.count {
                defer { index += 1 }
                if let element = slots[index].element {
                    return (Self.key(index: UInt32(index), generation: slots[index].generation), element)
                }
            }
            return nil
        }
    }
}
