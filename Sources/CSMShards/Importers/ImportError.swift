/// An error reading a dataset to import. Its description is one line naming the file and
/// what is wrong with it.
public struct ImportError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file (or folder) at fault.
    public let path: String
    /// What is wrong.
    public let problem: String

    public init(_ path: String, _ problem: String) {
        self.path = path
        self.problem = problem
    }

    public var description: String { "\(path): \(problem.replacingOccurrences(of: "\n", with: " "))" }
}
