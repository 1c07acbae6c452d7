import Foundation

/// Class names as csm's files store them: a JSON list of strings (shard attribute
/// `class_names`, model metadata `class_names`, an importer's names file).
public enum ClassNames {
    /// The names of a JSON list of strings, or nil when `text` is not one.
    public static func parse(_ text: String) -> [String]? {
        parse(Data(text.utf8))
    }

    /// The names of a JSON list of strings, or nil when `data` is not one.
    public static func parse(_ data: Data) -> [String]? {
        try? JSONDecoder().decode([String].self, from: data)
    }

    /// `names` as a compact JSON list.
    public static func json(_ names: [String]) -> String {
        JSONValue.array(names.map { .string($0) }).jsonText
    }
}
