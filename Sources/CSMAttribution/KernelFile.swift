import CSMFormats
import CSMHDF5
import CSMShards
import Foundation

/// The kernel inverse kept beside a features file (docs/formats/attribution.md), so that queries
/// compute it once: `FEATURES.kernel.h5`, schema `csm-attribution-kernel/1`, dataset
/// `kernel_inverse` float64 [s, s] and root attributes `form` (`features`: (ΦᵀΦ + λI)⁻¹;
/// `gram`: (ΦΦᵀ + λI)⁻¹), `damping` and `features_sha256`.
public enum KernelFile {
    public static let schema = "csm-attribution-kernel/1"

    /// Where the kernel of the features file `featuresPath` lies.
    public static func path(forFeatures featuresPath: String) -> String {
        (featuresPath.hasSuffix(".h5") ? String(featuresPath.dropLast(3)) : featuresPath) + ".kernel.h5"
    }

    /// The kernel stored at `path` if it was made from features with SHA-256 `featuresSHA256`
    /// with damping `damping`; nil when there is none or it belongs to other features or
    /// another damping. A damaged file is an error.
    public static func read(_ path: String, featuresSHA256: String, damping: Double) throws -> AttributionKernel? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        return try HDF5.locked {
            let (file, root) = try HDF5.openReadOnly(path)
            guard HDF5.hasAttribute(root, "schema"), try HDF5.readString(root, "schema", path) == schema else {
                throw FileError(path, "not a \(schema) file")
            }
            guard try HDF5.readString(root, "features_sha256", path) == featuresSHA256,
                  try HDF5.readDouble(root, "damping", path) == damping else { return nil }
            let formName = try HDF5.readString(root, "form", path)
            guard let form = AttributionKernel.Form(rawValue: formName) else {
                throw FileError(path, dataset: "form", "is '\(formName)', expected features or gram")
            }
            let shape = try HDF5.datasetShape(file, "kernel_inverse", type: .float64, rank: 2, path)
            guard shape[0] == shape[1] else { throw FileError(path, dataset: "kernel_inverse", "is \(shape), not square") }
            let inverse: [Double] = try HDF5.readRows(file, "kernel_inverse", shape: shape, rows: 0..<shape[0], type: .float64, path)
            return AttributionKernel(form: form, damping: damping, inverse: inverse, size: shape[0])
        }
    }

    /// Writes `kernel` (made from the features with SHA-256 `featuresSHA256`) to `path`, atomically.
    public static func write(_ kernel: AttributionKernel, featuresSHA256: String, to path: String) throws {
        try AtomicFile.write(to: path) { temporary in
            try HDF5.locked {
                let (file, root) = try HDF5.createReproducibleFile(temporary, path: path)
                try HDF5.writeString(root, "schema", schema, path)
                try HDF5.writeString(root, "form", kernel.form.rawValue, path)
                try HDF5.writeDouble(root, "damping", kernel.damping, path)
                try HDF5.writeString(root, "features_sha256", featuresSHA256, path)
                try HDF5.writeDataset(file, "kernel_inverse", kernel.inverse, dims: [kernel.size, kernel.size], type: .float64,
                                      chunkRows: max(1, (1 << 20) / (8 * kernel.size)), deflateLevel: 1, path)
                root.close()
                guard file.close() else { throw FileError(path, "cannot finish writing: \(HDF5.takeErrorMessage())") }
            }
        }
    }
}
