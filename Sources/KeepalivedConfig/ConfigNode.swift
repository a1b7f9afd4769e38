/// A keyword line and, when a `{` followed it, the lines of its block.
public struct ConfigNode: Hashable, Sendable {
    public var line: ConfigLine
    public var block: [ConfigNode]?

    public var keyword: String { line.words[0] }
    public var words: [String] { line.words }
    public var location: SourceLocation { line.location }
    /// The words after the keyword.
    public var arguments: ArraySlice<String> { line.words.dropFirst() }

    public init(line: ConfigLine, block: [ConfigNode]? = nil) {
        self.line = line
        self.block = block
    }

    /// Builds the block structure of a pre-processed configuration: a `{` line opens a block for the
    /// keyword line just before it, a `}` line closes the innermost one. Stray and missing braces
    /// are reported in keepalived's words.
    public static func tree(of lines: [ConfigLine], maximumDepth: Int = 64) -> ([ConfigNode], [Diagnostic]) {
        var diagnostics: [Diagnostic] = []
        // Each open level: its nodes so far, and whether it is a real block (or an ignored `{`).
        var stack: [(nodes: [ConfigNode], opener: ConfigLine?)] = [([], nil)]
        var previousWasKeyword = false
        for line in lines {
            if line.words == ["{"] {
                if previousWasKeyword, stack.count <= maximumDepth {
                    let owner = stack[stack.count - 1].nodes.removeLast()
                    stack.append((nodes: [], opener: owner.line))
                } else {
                    if stack.count > maximumDepth {
                        diagnostics.append(Diagnostic(.fatal, "Blocks nested more than \(maximumDepth) deep", at: line.location))
                    } else {
                        diagnostics.append(Diagnostic(.unexpectedBlockStart, "Unexpected '{' - ignoring", at: line.location))
                    }
                    stack.append((nodes: [], opener: nil))
                }
                previousWasKeyword = false
                continue
            }
            if line.words == ["}"] {
                if stack.count == 1 {
                    diagnostics.append(Diagnostic(.unexpectedBlockEnd, "Extra '}' found", at: line.location))
                } else {
                    let level = stack.removeLast()
                    if let opener = level.opener {
                        stack[stack.count - 1].nodes.append(ConfigNode(line: opener, block: level.nodes))
                    }
                }
                previousWasKeyword = false
                continue
            }
            stack[stack.count - 1].nodes.append(ConfigNode(line: line))
            previousWasKeyword = true
        }
        if stack.count > 1 {
            let unclosed = stack.count - 1
            let place = stack.dropFirst().first(where: { $0.opener != nil })?.opener?.location
            diagnostics.append(Diagnostic(.missingBlockEnd, "There are \(unclosed) missing '}'s or extra '{'s", at: place))
            while stack.count > 1 {
                let level = stack.removeLast()
                if let opener = level.opener {
                    stack[stack.count - 1].nodes.append(ConfigNode(line: opener, block: level.nodes))
                }
            }
        }
        return (stack[0].nodes, diagnostics)
    }
}
