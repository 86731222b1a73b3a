/* Preprocessed by build/find.rs to read the version of the TensorRT headers. */
#include <NvInferVersion.h>
RUST_TRT_MAJOR NV_TENSORRT_MAJOR
RUST_TRT_MINOR NV_TENSORRT_MINOR
RUST_TRT_PATCH NV_TENSORRT_PATCH
RUST_TRT_BUILD NV_TENSORRT_BUILD
#ifdef TRT_MAJOR_RTX
RUST_TRT_FLAVOR rtx
#else
RUST_TRT_FLAVOR tensorrt
#endif
