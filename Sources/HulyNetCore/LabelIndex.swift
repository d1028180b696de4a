/// Entries of container kinds, each with labels, found by "the labels asked for are all among the
/// entry's" (`GetOptions.labelsMatch`) without looking at every entry: per kind, the entries
/// that have each label, intersected starting from the smallest of those sets. A get-or-start
/// with labels of its own thus costs the same with ten containers or ten thousand.
///
/// The agent indexes its containers and its starts under way with it; the coordinator its starts
/// under way. Inlinable, so that other modules get it specialized for their `ID` (unspecialized
/// generic code costs about three times as much here).
public struct LabelIndex<ID: Hashable & Sendable>: Sendable {
    @usableFromInline
    struct Entry: Sendable {
        @usableFromInline let kind: ContainerKind
        /// Each label once.
        @usableFromInline let labels: [String]

        @inlinable
        init(kind: ContainerKind, labels: [String]) {
            self.kind = kind
            self.labels = labels
        }
    }

    /// The entries of one kind: all of them, and those that have each label.
    @usableFromInline
    struct Postings: Sendable {
        @usableFromInline var all: Set<ID> = []
        @usableFromInline var byLabel: [String: Set<ID>] = [:]

        @inlinable
        init() {}

        @inlinable
        mutating func insert(_ id: ID, labels: [String]) {
            all.insert(id)
            for label in labels { byLabel[label, default: []].insert(id) }
        }

        @inlinable
        mutating func remove(_ id: ID, labels: [String]) {
            all.remove(id)
            for label in labels {
                guard let position = byLabel.index(forKey: label) else { continue }
                byLabel.values[position].remove(id)
                if byLabel.values[position].isEmpty { byLabel.remove(at: position) }
            }
        }

        /// The entries of each label asked for, the smallest set apart; nil when a label has none.
        @inlinable
        func sets(_ labels: [String]) -> (smallest: Set<ID>, others: [Set<ID>])? {
            var sets: [Set<ID>] = []
            sets.reserveCapacity(labels.count)
            for label in labels {
                guard let set = byLabel[label] else { return nil }
                sets.append(set)
            }
            let smallest = sets.indices.min { sets[$0].count < sets[$1].count }!
            return (sets.remove(at: smallest), sets)
        }
    }

    @usableFromInline var entries: [ID: Entry] = [:]
    @usableFromInline var kinds: [ContainerKind: Postings] = [:]

    @inlinable
    public init() {}

    @inlinable
    public var count: Int { entries.count }

    @inlinable
    public func contains(_ id: ID) -> Bool { entries[id] != nil }

    /// Adds `id`, or replaces what it had; nil labels and no labels are the same.
    @inlinable
    public mutating func insert(_ id: ID, kind: ContainerKind, labels: [String]?) {
        remove(id)
        // Labels are few: each once, without hashing them here.
        var distinct: [String] = []
        for label in labels ?? [] where !distinct.contains(label) { distinct.append(label) }
        entries[id] = Entry(kind: kind, labels: distinct)
        kinds[kind, default: Postings()].insert(id, labels: distinct)
    }

    /// Forgets `id`; false when it was not there.
    @inlinable
    @discardableResult
    public mutating func remove(_ id: ID) -> Bool {
        guard let entry = entries.removeValue(forKey: id), let position = kinds.index(forKey: entry.kind) else { return false }
        kinds.values[position].remove(id, labels: entry.labels)
        if kinds.values[position].all.isEmpty { kinds.remove(at: position) }
        return true
    }

    @inlinable
    public mutating func removeAll() {
        entries.removeAll()
        kinds.removeAll()
    }

    /// An entry of `kind` that has every one of `labels` (any entry of the kind when `labels` is
    /// nil or empty), or nil when none has.
    @inlinable
    public func first(kind: ContainerKind, labels: [String]?) -> ID? {
        guard let postings = kinds[kind] else { return nil }
        guard let labels, !labels.isEmpty else { return postings.all.first }
        guard let (smallest, others) = postings.sets(labels) else { return nil }
        return smallest.first { id in others.allSatisfy { $0.contains(id) } }
    }

    /// Every entry `first` could answer.
    @inlinable
    public func all(kind: ContainerKind, labels: [String]?) -> Set<ID> {
        guard let postings = kinds[kind] else { return [] }
        guard let labels, !labels.isEmpty else { return postings.all }
        guard let (smallest, others) = postings.sets(labels) else { return [] }
        return smallest.filter { id in others.allSatisfy { $0.contains(id) } }
    }
}
