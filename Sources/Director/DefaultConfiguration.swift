import Foundation

/// The configuration file lvsd reads without -f, as keepalived does: `$LVSD_CONFIG` if set (an
/// empty value means none), else keepalived's own path, else SwiftLVS's, the first that exists.
public enum DefaultConfiguration {
    public static let paths = ["/etc/keepalived/keepalived.conf", "/etc/swiftlvs/keepalived.conf"]

    public static func find(environment: [String: String],
                            exists: (String) -> Bool = { FileManager.default.fileExists(atPath: $0) }) -> String? {
        if let chosen = environment["LVSD_CONFIG"] { return chosen.isEmpty ? nil : chosen }
        return paths.first(where: exists)
    }
}
