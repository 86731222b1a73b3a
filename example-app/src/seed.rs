// The seed scenario's constants, shared by `build.rs` (which includes this file), the
// application, and the data step that writes the example's data
// (`cargo run -p test-support --bin example-data -- example-app/data`, run by
// `cargo xtask example`).

/// Seed of the decoder's weights.
pub(crate) const MODEL_SEED: u64 = 2024;
/// Seed of the calibration samples.
pub(crate) const CALIBRATION_SEED: u64 = 7;
/// Pixels cropped from the 4x-upsampled latent to get `H×W`.
pub(crate) const CROP: usize = 3;

/// Latent shapes `(N, h, w)` of the calibration samples: every batch size and resolution
/// corner of the profile plus points in between (every 5th is held out for the report).
pub(crate) const CALIBRATION_SHAPES: &[(usize, usize, usize)] = &[
    (1, 4, 4),
    (2, 8, 8),
    (4, 16, 16),
    (3, 12, 6),
    (1, 16, 8),
    (2, 6, 14),
    (4, 10, 10),
    (1, 8, 16),
    (3, 4, 12),
    (2, 14, 4),
];

/// Profile bounds as `(min, opt, max)` of `(N, h = w)`.
pub(crate) const PROFILE: [(usize, usize); 3] = [(1, 4), (2, 8), (4, 16)];

/// Seed of the demonstration runs' inputs.
pub(crate) const RUN_SEED: u64 = 1234;
/// Shapes `(N, h, w)` of the demonstration runs (inside the profile, not calibration shapes).
pub(crate) const RUNS: &[(usize, usize, usize)] = &[(1, 5, 7), (2, 8, 8), (4, 16, 12)];
/// Latent channels of the decoder.
pub(crate) const LATENT_CHANNELS: i64 = 8;
/// Upsampling of the decoder (latent `h×w` → image `4h×4w` before cropping).
pub(crate) const UPSAMPLE: i64 = 4;
