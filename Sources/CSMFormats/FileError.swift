/// The one error csm raises about a file: the file, the dataset/attribute (HDF5) or tensor
/// (safetensors) at fault when the problem is local to one, and what is wrong. Its
/// description is one line: `path: 'dataset': problem`, `path: tensor 'name': problem` or
/// `path: problem`.
public struct FileError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file (or folder) at fault.
    public let path: String
    /// The HDF5 dataset or attribute at fault, if the problem is local to one.
    public let dataset: String?
    /// The safetensors tensor at fault, if the problem is local to one.
    public let tensor: String?
    /// What is wrong.
    public let problem: String

    /// A problem with `path`, or with its `dataset` (or attribute) when one is given.
    public init(_ path: String, dataset: String? = nil, _ problem: String) {
        self.path = path
        self.dataset = dataset
        self.tensor = nil
        self.problem = problem
    }

    /// A problem with tensor `tensor` of `path`.
    public init(_ path: String, tensor: String, _ problem: String) {
        self.path = path
        self.dataset = nil
        self.tensor = tensor
        self.problem = problem
    }

    public var description: String {
        let text = problem.replacingOccurrences(of: "\n", with: " ")
        if let dataset { return "\(path): '\(dataset)': \(text)" }
        if let tensor { return "\(path): tensor '\(tensor)': \(text)" }
        return "\(path): \(text)"
    }
}
