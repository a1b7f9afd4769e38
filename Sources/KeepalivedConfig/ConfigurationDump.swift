/// The effective configuration as text (`lvsd --dump-config`): the blocks as they were understood
/// after includes, `@` conditions, macros and `~SEQ` expansion, re-indented, each file's lines
/// headed by a comment naming it, and the table they ask for.
public enum ConfigurationDump {
    public static func text(of loaded: KeepalivedConfiguration.Loaded) -> String {
        var out = "# effective configuration (after include, @, $ and ~SEQ expansion)\n"
        let (nodes, _) = ConfigNode.tree(of: loaded.lines)
        var file = ""
        func quote(_ word: String) -> String {
            word.isEmpty || word.contains(where: { $0 == " " || $0 == "\t" || $0 == "#" || $0 == "!" || $0 == "{" || $0 == "}" })
                ? "\"\(word)\"" : word
        }
        func write(_ nodes: [ConfigNode], depth: Int) {
            for node in nodes {
                if node.location.file != file {
                    file = node.location.file
                    out += String(repeating: "  ", count: depth) + "# from \(file)\n"
                }
                out += String(repeating: "  ", count: depth) + node.words.map(quote).joined(separator: " ")
                if let block = node.block {
                    out += " {\n"
                    write(block, depth: depth + 1)
                    out += String(repeating: "  ", count: depth) + "}\n"
                } else {
                    out += "\n"
                }
            }
        }
        write(nodes, depth: 0)
        let plan = TablePlan(loaded.configuration)
        out += "\n# virtual server table it asks for (ipvsadm -S form)\n"
        for service in plan.services {
            out += "# " + service.config.key.description + " " + service.config.scheduler
            if service.config.isPersistent { out += " persistent \(service.config.persistenceTimeout)" }
            out += "\n"
            for server in service.servers {
                out += "#   -> \(server.endpoint) \(server.forwarding.listingName) weight \(server.weight)\n"
            }
        }
        for finding in loaded.diagnostics {
            out += "# \(finding)\n"
        }
        return out
    }
}
