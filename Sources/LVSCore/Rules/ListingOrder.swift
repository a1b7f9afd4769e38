/// The order `ipvsadm -L` and `-S` list services and real servers in: glibc's merge-sort `qsort`
/// (glibc 2.36) with ipvsadm's comparators, which subtract 32-bit values and read the result as a
/// signed int. Differences of 2^31 or more therefore flip, and the order is not numeric (nor even
/// transitive); reproducing the algorithm reproduces the output.
public enum ListingOrder {
    /// `a - b` on unsigned 32-bit values, read as a C int.
    @inline(__always)
    static func difference(_ a: UInt32, _ b: UInt32) -> Int32 { Int32(bitPattern: a &- b) }

    /// The address as the C union holds it: an IPv4 address fills the first 32-bit word only.
    static func unionWords(_ a: IPAddress) -> [UInt32] {
        if a.family == .inet { return [a.v4, 0, 0, 0] }
        let w = a.words
        return [w.0, w.1, w.2, w.3]
    }

    static func compareAddresses(_ a: IPAddress, _ b: IPAddress) -> Int32 {
        let wa = unionWords(a)
        let wb = unionWords(b)
        if a.family == .inet6 {
            for i in 0..<4 {
                let r = difference(wa[i], wb[i])
                if r != 0 { return r }
            }
            return 0
        }
        return difference(wa[0], wb[0])
    }

    /// ipvsadm's `ipvs_cmp_services`: fwmark, family, protocol, address, port.
    public static func compareServices(_ a: VirtualService.Key, _ b: VirtualService.Key) -> Int32 {
        func parts(_ k: VirtualService.Key) -> (mark: UInt32, family: Int32, proto: Int32, address: IPAddress, port: Int32) {
            switch k {
            case .address(let p, let address, let port):
                return (0, Int32(address.family.rawValue), Int32(p.rawValue), address, Int32(port))
            case .fwmark(let mark, let family):
                let zero: IPAddress = family == .inet6 ? .anyV6 : .anyV4
                return (mark, Int32(family.rawValue), 0, zero, 0)
            }
        }
        let x = parts(a)
        let y = parts(b)
        var r = difference(x.mark, y.mark)
        if r != 0 { return r }
        r = x.family - y.family
        if r != 0 { return r }
        r = x.proto - y.proto
        if r != 0 { return r }
        r = compareAddresses(x.address, y.address)
        if r != 0 { return r }
        return x.port - y.port
    }

    /// ipvsadm's `ipvs_cmp_dests`: address, then port.
    public static func compareServers(_ a: Endpoint, _ b: Endpoint) -> Int32 {
        let r = compareAddresses(a.address, b.address)
        if r != 0 { return r }
        return Int32(a.port) - Int32(b.port)
    }

    /// glibc's `msort`: split into ⌊n/2⌋ and the rest, sort each, merge taking the left on `<= 0`.
    public static func mergeSort<T>(_ items: [T], by compare: (T, T) -> Int32) -> [T] {
        guard items.count > 1 else { return items }
        let n1 = items.count / 2
        let left = mergeSort(Array(items[..<n1]), by: compare)
        let right = mergeSort(Array(items[n1...]), by: compare)
        var out: [T] = []
        out.reserveCapacity(items.count)
        var i = 0
        var j = 0
        while i < left.count && j < right.count {
            if compare(left[i], right[j]) <= 0 {
                out.append(left[i])
                i += 1
            } else {
                out.append(right[j])
                j += 1
            }
        }
        out.append(contentsOf: left[i...])
        out.append(contentsOf: right[j...])
        return out
    }

    /// Services and their real servers in listing order (`sort: false` keeps kernel order).
    public static func sorted(_ services: [ServiceSnapshot], sort: Bool = true) -> [ServiceSnapshot] {
        guard sort else { return services }
        return mergeSort(services) { compareServices($0.config.key, $1.config.key) }.map { s in
            var s = s
            s.servers = mergeSort(s.servers) { compareServers($0.config.endpoint, $1.config.endpoint) }
            return s
        }
    }
}
