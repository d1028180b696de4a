/// Entries of container kinds, each with labels, found by "the labels asked for are all among the
/// entry's" (`GetOptions.labelsMatch`) without looking at every entry: per kind, the entries
/// that have each label, intersected starting from the smallest of those sets. A get-or-start
/// with labels of its own thus costs the same with ten containers or ten thousand.
///
/// The agent indexes its containers and its starts under way with it; the coordinator its starts
/// under way.
public struct LabelIndex<ID: Hashable & Sendable>: Sendable {
    private struct Entry: Sendable {
        let kind: ContainerKind
        let labels: Set<String>
    }

    private struct Kind: Sendable {
        var all: Set<ID> = []
        var byLabel: [String: Set<ID>] = [:]
    }

    private var entries: [ID: Entry] = [:]
    private var kinds: [ContainerKind: Kind] = [:]

    public init() {}

    public var count: Int { entries.count }

    public func contains(_ id: ID) -> Bool { entries[id] != nil }

    /// Adds `id`, or replaces what it had; nil labels and no labels are the same.
    public mutating func insert(_ id: ID, kind: ContainerKind, labels: [String]?) {
        remove(id)
        let entry = Entry(kind: kind, labels: Set(labels ?? []))
        entries[id] = entry
        kinds[kind, default: Kind()].all.insert(id)
        for label in entry.labels {
            kinds[kind, default: Kind()].byLabel[label, default: []].insert(id)
        }
    }

    /// Forgets `id`; false when it was not there.
    @discardableResult
    public mutating func remove(_ id: ID) -> Bool {
        guard let entry = entries.removeValue(forKey: id) else { return false }
        for label in entry.labels {
            kinds[entry.kind]?.byLabel[label]?.remove(id)
            if kinds[entry.kind]?.byLabel[label]?.isEmpty == true { kinds[entry.kind]?.byLabel[label] = nil }
        }
        kinds[entry.kind]?.all.remove(id)
        if kinds[entry.kind]?.all.isEmpty == true { kinds[entry.kind] = nil }
        return true
    }

    public mutating func removeAll() {
        entries.removeAll()
        kinds.removeAll()
    }

    /// An entry of `kind` that has every one of `labels` (any entry of the kind when `labels` is
    /// nil or empty), or nil when none has.
    public func first(kind: ContainerKind, labels: [String]?) -> ID? {
        guard let entries = kinds[kind] else { return nil }
        guard let labels, !labels.isEmpty else { return entries.all.first }
        guard let (smallest, others) = postings(entries, labels) else { return nil }
        return smallest.first { id in others.allSatisfy { $0.contains(id) } }
    }

    /// Every entry `first` could answer.
    public func all(kind: ContainerKind, labels: [String]?) -> Set<ID> {
        guard let entries = kinds[kind] else { return [] }
        guard let labels, !labels.isEmpty else { return entries.all }
        guard let (smallest, others) = postings(entries, labels) else { return [] }
        return smallest.filter { id in others.allSatisfy { $0.contains(id) } }
    }

    /// The entries of each label asked for, the smallest set apart; nil when a label has none.
    private func postings(_ entries: Kind, _ labels: [String]) -> (smallest: Set<ID>, others: [Set<ID>])? {
        var sets: [Set<ID>] = []
        sets.reserveCapacity(labels.count)
        for label in labels {
            guard let set = entries.byLabel[label] else { return nil }
            sets.append(set)
        }
        let smallest = sets.indices.min { sets[$0].count < sets[$1].count }!
        return (sets.remove(at: smallest), sets)
    }
}
