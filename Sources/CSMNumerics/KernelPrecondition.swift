/// Stops the program when a kernel is called with sizes that do not fit together.
///
/// Unlike `precondition`, it stays on in the `-Ounchecked` builds of the numeric targets, so
/// a size mismatch can never become a silent read or write out of bounds. Kernels call it
/// once per call, outside their hot loops, where it costs nothing measurable. It guards
/// programming errors: sizes that come from files are validated (with thrown errors) before
/// any kernel sees them.
@inline(__always)
public func kernelPrecondition(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
                               file: StaticString = #fileID, line: UInt = #line) {
    if !condition() { fatalError(message(), file: file, line: line) }
}

extension FeatureMap {
    /// True when `values` holds exactly count · height · width · channels floats.
    public var hasConsistentShape: Bool {
        count >= 0 && height >= 0 && width >= 0 && channels >= 0 && values.count == count * height * width * channels
    }
}
