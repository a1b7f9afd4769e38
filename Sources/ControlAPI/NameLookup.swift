import Foundation
import LVSCore

/// Names for listings without `-n`: a host name for an address and a service name for a port.
public protocol NameLookup: Sendable {
    func hostName(for address: IPAddress) -> String?
    func serviceName(for port: UInt16, protocol: IPProtocol) -> String?
}

extension NameLookup {
    /// An endpoint as ipvsadm writes it without `-n`: `host:service`, each falling back to numbers
    /// (fwmark services have no protocol, so their ports stay numeric).
    public var formatter: SaveFormat.EndpointFormatter {
        let lookup = self
        return { endpoint, proto in
            let host = lookup.hostName(for: endpoint.address)
                ?? (endpoint.address.isV6 ? "[\(endpoint.address)]" : "\(endpoint.address)")
            let port = proto.flatMap { lookup.serviceName(for: endpoint.port, protocol: $0) } ?? String(endpoint.port)
            return "\(host):\(port)"
        }
    }
}

/// No names: everything numeric.
public struct NumericNames: NameLookup {
    public init() {}
    public func hostName(for address: IPAddress) -> String? { nil }
    public func serviceName(for port: UInt16, protocol: IPProtocol) -> String? { nil }
}

/// Names from /etc/hosts and /etc/services (read once), both ways: the local files ipvsadm's resolver
/// consults first. No DNS queries are made, so a listing never waits on the network.
public struct FileNames: NameLookup, NameResolver {
    private var hostsByAddress: [IPAddress: String] = [:]
    private var addressesByHost: [String: UInt32] = [:]
    private var servicesByPort: [String: String] = [:]
    private var portsByService: [String: UInt16] = [:]

    public init(hosts: String = "/etc/hosts", services: String = "/etc/services") {
        let hostsText = (try? String(contentsOfFile: hosts, encoding: .utf8)) ?? ""
        let servicesText = (try? String(contentsOfFile: services, encoding: .utf8)) ?? ""
        self.init(hostsText: hostsText, servicesText: servicesText)
    }

    public init(hostsText: String, servicesText: String) {
        for line in hostsText.split(separator: "\n") {
            let words = line.prefix { $0 != "#" }.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard words.count >= 2, let address = IPAddress(words[0]) else { continue }
            if hostsByAddress[address] == nil { hostsByAddress[address] = words[1] }
            if !address.isV6 {
                for name in words.dropFirst() where addressesByHost[name] == nil { addressesByHost[name] = address.v4 }
            }
        }
        for line in servicesText.split(separator: "\n") {
            let words = line.prefix { $0 != "#" }.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard words.count >= 2 else { continue }
            let parts = words[1].split(separator: "/")
            guard parts.count == 2, let port = UInt16(parts[0]) else { continue }
            let proto = String(parts[1])
            if servicesByPort["\(port)/\(proto)"] == nil { servicesByPort["\(port)/\(proto)"] = words[0] }
            for name in [words[0]] + words.dropFirst(2) where portsByService["\(name)/\(proto)"] == nil {
                portsByService["\(name)/\(proto)"] = port
            }
        }
    }

    public func hostName(for address: IPAddress) -> String? { hostsByAddress[address] }

    public func serviceName(for port: UInt16, protocol proto: IPProtocol) -> String? {
        servicesByPort["\(port)/\(proto.name.lowercased())"]
    }

    public func ipv4Address(forHost name: String) -> UInt32? { addressesByHost[name] }

    public func port(forService name: String, protocol proto: String) -> UInt16? { portsByService["\(name)/\(proto)"] }
}
