/// One or two values kept inline: what a handed-over connection has per flow (a DR or TUN
/// connection has one flow, a NAT connection two). A `Record` is made, copied and dropped for
/// every connection the kernel forwards; arrays there cost an allocation and reference counting
/// each.
struct FlowPair<Element>: RandomAccessCollection, MutableCollection {
    private var first: Element
    private var second: Element?

    init(_ first: Element) {
        self.first = first
        second = nil
    }

    init(_ first: Element, _ second: Element) {
        self.first = first
        self.second = second
    }

    /// The elements of a sequence of one or two.
    init<S: Sequence>(_ elements: S) where S.Element == Element {
        var iterator = elements.makeIterator()
        guard let a = iterator.next() else { preconditionFailure("a connection has at least one flow") }
        first = a
        second = iterator.next()
        precondition(iterator.next() == nil, "a connection has at most two flows")
    }

    init(repeating value: Element, count: Int) {
        precondition(count == 1 || count == 2, "a connection has one or two flows")
        first = value
        second = count == 2 ? value : nil
    }

    var startIndex: Int { 0 }
    var endIndex: Int { second == nil ? 1 : 2 }

    subscript(position: Int) -> Element {
        get {
            precondition(position >= 0 && position < endIndex, "index out of range")
            return position == 0 ? first : second!
        }
        set {
            precondition(position >= 0 && position < endIndex, "index out of range")
            if position == 0 { first = newValue } else { second = newValue }
        }
    }

    /// The same shape, each element transformed.
    func mapPair<T>(_ transform: (Element) throws -> T) rethrows -> FlowPair<T> {
        if let second { return FlowPair<T>(try transform(first), try transform(second)) }
        return FlowPair<T>(try transform(first))
    }
}

extension FlowPair: Sendable where Element: Sendable {}
