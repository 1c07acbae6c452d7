import CHDF5
import CHDF5Shim

/// The element types csm's HDF5 files use (docs/formats/csm-shard.md, docs/formats/attribution.md):
/// little-endian integers and IEEE floats, named as the format pages and h5py name them.
public enum HDF5ElementType: String, Sendable {
    case uint8, int32, int64, float32, float64

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .uint8: return 1
        case .int32, .float32: return 4
        case .int64, .float64: return 8
        }
    }

    /// The little-endian type stored in the file.
    package var fileType: hid_t {
        switch self {
        case .uint8: return csm_h5t_std_u8le()
        case .int32: return csm_h5t_std_i32le()
        case .int64: return csm_h5t_std_i64le()
        case .float32: return csm_h5t_ieee_f32le()
        case .float64: return csm_h5t_ieee_f64le()
        }
    }

    /// The matching in-memory type.
    package var memoryType: hid_t {
        switch self {
        case .uint8: return csm_h5t_native_uint8()
        case .int32: return csm_h5t_native_int32()
        case .int64: return csm_h5t_native_int64()
        case .float32: return csm_h5t_native_float()
        case .float64: return csm_h5t_native_double()
        }
    }
}
