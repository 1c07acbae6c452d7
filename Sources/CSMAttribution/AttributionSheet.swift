import CSMFormats
import CSMPictures
import Foundation

extension Attributions {
    /// Training images per query on the attribution sheet at most.
    public static let maximumSheetColumns = 8

    /// The attribution sheet of the file at `path`: one row per query (the first `limit`),
    /// labelled with its index and class (or class pair and λ), the query image then its best
    /// training images (at most `maximumSheetColumns`), each captioned with its training index
    /// and score. The images are read from the shards the file names.
    public static func sheet(_ path: String, queries limit: Int) throws -> (sheet: ContactSheet, rows: Int, columns: Int) {
        let result = try Attributions(path: path)
        guard result.queryCount > 0 else { throw FileError(path, "holds no queries to draw") }
        let train = try AttributionImages(resolving: result.trainPath)
        let queries = try AttributionImages(resolving: result.queryPath)
        let shown = min(result.top, maximumSheetColumns)
        func raster(_ image: (pixels: [UInt8], height: Int, width: Int, channels: Int)) throws -> RasterImage {
            try RasterImage(width: image.width, height: image.height, channels: image.channels, pixels: image.pixels)
        }
        var images: [RasterImage] = [], captions: [String] = [], rowLabels: [String] = []
        for q in 0..<min(limit, result.queryCount) {
            let queryIndex = Int(result.queryIndex[q])
            guard queryIndex >= 0 && queryIndex < queries.count else {
                throw FileError(path, "query \(queryIndex) is not in \(result.queryPath) (\(queries.count) images)")
            }
            images.append(try raster(queries.pixels(queryIndex)))
            captions.append("")
            rowLabels.append("\(queryIndex): " + (try queries.caption(queryIndex)))
            for rank in 0..<shown {
                let index = Int(result.trainIndex[q * result.top + rank])
                guard index >= 0 && index < train.count else {
                    throw FileError(path, "training index \(index) is not in \(result.trainPath) (\(train.count) images)")
                }
                images.append(try raster(train.pixels(index)))
                captions.append("#\(index) " + String(format: "%.3g", result.scores[q * result.top + rank]))
            }
        }
        let sheet = ContactSheet(images: images, columns: shown + 1, title: "DAS: query | best training images",
                                 columnLabels: ["query"] + (1...shown).map { "top \($0)" }, rowLabels: rowLabels, captions: captions, scale: 3)
        return (sheet, rowLabels.count, shown)
    }
}
