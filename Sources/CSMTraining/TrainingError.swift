/// A training problem that no one file is at fault for (settings, a non-finite loss), one
/// line; problems with a file are `FileError`s.
public struct TrainingError: Error, CustomStringConvertible, Equatable {
    public let description: String

    public init(_ description: String) { self.description = description }
}
