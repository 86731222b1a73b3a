/*
 * C ABI over the TensorRT C++ API, shared by TensorRT 10.x/11.x and TensorRT-RTX 1.x.
 *
 * Conventions:
 * - Every fallible call returns a `trt_status`; `TRT_OK` (0) is success. On failure the
 *   message is stored per thread and read with `trt_last_error()` until the next shim call
 *   on the same thread.
 * - No C++ exception crosses this boundary: every entry point catches everything.
 * - Objects are opaque; each has one `*_destroy` function that accepts NULL.
 * - Strings returned by getters are owned by the object they came from and live as long
 *   as it does, unless the function says otherwise.
 */
#ifndef TRT_SHIM_H
#define TRT_SHIM_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Status of a shim call. */
typedef int32_t trt_status;
/** Success. */
#define TRT_OK 0
/** TensorRT returned a null object or `false`; see `trt_last_error()`. */
#define TRT_ERR_TENSORRT 1
/** An argument was invalid (null pointer, unknown tensor name, too many dims…). */
#define TRT_ERR_INVALID_ARGUMENT 2
/** The ONNX parser rejected the model; see `trt_network_parser_error*`. */
#define TRT_ERR_PARSE 3
/** The feature does not exist in the TensorRT flavor/version the shim was compiled against. */
#define TRT_ERR_UNSUPPORTED 4
/** A C++ exception was caught (includes `std::bad_alloc`). */
#define TRT_ERR_EXCEPTION 5

/** Maximum rank of a `trt_dims` (TensorRT's `Dims::MAX_DIMS`). */
#define TRT_MAX_DIMS 8

/** Shape of a tensor; `-1` marks a dynamic dimension. */
typedef struct trt_dims {
    /** Number of dimensions, or -1 when TensorRT reports an invalid shape. */
    int32_t nb_dims;
    /** Extents; only the first `nb_dims` are meaningful. */
    int64_t d[TRT_MAX_DIMS];
} trt_dims;

/** Entry points resolved from the TensorRT libraries at run time. */
typedef struct trt_entry_points {
    /** `createInferBuilder_INTERNAL` of the inference library. */
    void *(*create_infer_builder)(void *logger, int32_t version);
    /** `createInferRuntime_INTERNAL` of the inference library. */
    void *(*create_infer_runtime)(void *logger, int32_t version);
    /** `createNvOnnxParser_INTERNAL` of the ONNX parser library (may be NULL). */
    void *(*create_onnx_parser)(void *network, void *logger, int32_t version);
} trt_entry_points;

/** Severity of a log message; same values as `nvinfer1::ILogger::Severity`. */
typedef int32_t trt_severity;

/** Log callback: `user` as given to `trt_logger_create`, the severity and a NUL-terminated message. */
typedef void (*trt_log_fn)(void *user, trt_severity severity, const char *message);

/** Progress callbacks; see `nvinfer1::IProgressMonitor`. */
typedef struct trt_progress_callbacks {
    /** A build phase starts; `parent` may be NULL. */
    void (*phase_start)(void *user, const char *phase, const char *parent, int32_t nb_steps);
    /** A step finished; return `false` to cancel the build. */
    bool (*step_complete)(void *user, const char *phase, int32_t step);
    /** A build phase finished. */
    void (*phase_finish)(void *user, const char *phase);
} trt_progress_callbacks;

/** One error of the ONNX parser. Strings live as long as the network. */
typedef struct trt_parser_error {
    /** `nvonnxparser::ErrorCode` value. */
    int32_t code;
    /** Index of the failing node, or -1. */
    int32_t node;
    /** Name of the failing node (may be empty). */
    const char *node_name;
    /** Operator type of the failing node (may be empty). */
    const char *node_operator;
    /** Description. */
    const char *desc;
    /** Source file of the parser where the error was raised. */
    const char *file;
    /** Source line of the parser. */
    int32_t line;
    /** Function of the parser. */
    const char *func;
} trt_parser_error;

/** Which profile bound to read or set. Same values as `nvinfer1::OptProfileSelector`. */
typedef int32_t trt_profile_selector;
/** Minimum shape. */
#define TRT_PROFILE_MIN 0
/** Optimum shape. */
#define TRT_PROFILE_OPT 1
/** Maximum shape. */
#define TRT_PROFILE_MAX 2

/** Direction of an engine I/O tensor. Same values as `nvinfer1::TensorIOMode`. */
typedef int32_t trt_io_mode;
/** Not an I/O tensor. */
#define TRT_IO_NONE 0
/** Input. */
#define TRT_IO_INPUT 1
/** Output. */
#define TRT_IO_OUTPUT 2

/** Element type. Same values as `nvinfer1::DataType`. */
typedef int32_t trt_data_type;

/** Memory pool. Same values as `nvinfer1::MemoryPoolType`. */
typedef int32_t trt_memory_pool;
/** Scratch memory of layer implementations. */
#define TRT_POOL_WORKSPACE 0

/** Flavor of the headers the shim was compiled against. */
typedef int32_t trt_flavor;
/** Full TensorRT. */
#define TRT_FLAVOR_TENSORRT 0
/** TensorRT-RTX. */
#define TRT_FLAVOR_RTX 1

typedef struct trt_logger trt_logger;
typedef struct trt_builder trt_builder;
typedef struct trt_network trt_network;
typedef struct trt_config trt_config;
typedef struct trt_profile trt_profile;
typedef struct trt_host_memory trt_host_memory;
typedef struct trt_runtime trt_runtime;
typedef struct trt_engine trt_engine;
typedef struct trt_context trt_context;

/* ---- versions and errors ---- */

/** `NV_TENSORRT_VERSION` of the headers (major*10000 + minor*100 + patch). */
int32_t trt_header_version(void);
/** `NV_ONNX_PARSER_VERSION` of the headers as major*10000 + minor*100 + patch. */
int32_t trt_header_parser_version(void);
/** Flavor of the headers. */
trt_flavor trt_header_flavor(void);
/** Message of the last failed call on this thread ("" if none). */
const char *trt_last_error(void);

/* ---- logger ---- */

/** Creates a logger that forwards every message with severity <= `max_severity` to `log`. */
trt_status trt_logger_create(trt_log_fn log, void *user, trt_severity max_severity, trt_logger **out);
/** Destroys a logger. Objects created with it must be destroyed first. */
void trt_logger_destroy(trt_logger *logger);

/* ---- builder, network, parser ---- */

/** Creates a builder. `api` is copied. */
trt_status trt_builder_create(const trt_entry_points *api, trt_logger *logger, trt_builder **out);
/** Destroys a builder. */
void trt_builder_destroy(trt_builder *builder);

/**
 * Creates a network and fills it by parsing ONNX bytes. `model_path` (may be NULL) locates
 * external weights. On `TRT_ERR_PARSE`, `*out` is still set so that the parser errors can be
 * read; the caller destroys it in every case where it is non-NULL. `strongly_typed` only
 * matters for TensorRT 10 (later versions are always strongly typed).
 */
trt_status trt_network_from_onnx(trt_builder *builder, const void *data, size_t size,
                                 const char *model_path, bool strongly_typed, trt_network **out);
/** Destroys a network and its parser. */
void trt_network_destroy(trt_network *network);
/** Number of parser errors recorded. */
int32_t trt_network_parser_error_count(const trt_network *network);
/** Reads parser error `index`. */
trt_status trt_network_parser_error(const trt_network *network, int32_t index, trt_parser_error *out);
/** Number of network inputs. */
int32_t trt_network_input_count(const trt_network *network);
/** Number of network outputs. */
int32_t trt_network_output_count(const trt_network *network);
/** Name, dims and element type of network input (`is_input`) or output `index`. */
trt_status trt_network_tensor(const trt_network *network, bool is_input, int32_t index, const char **name,
                              trt_dims *dims, trt_data_type *data_type);

/* ---- optimization profiles and builder config ---- */

/** Creates an optimization profile owned by the builder. */
trt_status trt_profile_create(trt_builder *builder, trt_profile **out);
/** Frees the handle (the profile itself belongs to the builder). */
void trt_profile_destroy(trt_profile *profile);
/** Sets one bound of input `name`. */
trt_status trt_profile_set_dims(trt_profile *profile, const char *name, trt_profile_selector which,
                                const trt_dims *dims);

/** Creates a builder configuration. */
trt_status trt_config_create(trt_builder *builder, trt_config **out);
/** Destroys a builder configuration (and its timing cache and progress monitor). */
void trt_config_destroy(trt_config *config);
/** Adds a profile; returns its index through `index`. */
trt_status trt_config_add_profile(trt_config *config, const trt_profile *profile, int32_t *index);
/** Limits a memory pool in bytes. */
trt_status trt_config_set_memory_pool_limit(trt_config *config, trt_memory_pool pool, size_t bytes);
/** Sets the builder optimization level (0..=5). */
trt_status trt_config_set_optimization_level(trt_config *config, int32_t level);
/** Enables FP16 kernels (TensorRT 10 only: later versions take precision from the network). */
trt_status trt_config_set_fp16(trt_config *config, bool enable);
/** Uses a timing cache initialised from `blob` (may be empty). */
trt_status trt_config_set_timing_cache(trt_config *config, const void *blob, size_t size);
/** Serializes the config's timing cache. */
trt_status trt_config_serialize_timing_cache(const trt_config *config, trt_host_memory **out);
/** Installs progress callbacks, kept until the config is destroyed. */
trt_status trt_config_set_progress(trt_config *config, const trt_progress_callbacks *callbacks, void *user);

/** Builds and serializes an engine. */
trt_status trt_builder_build_serialized(trt_builder *builder, trt_network *network, trt_config *config,
                                        trt_host_memory **out);

/* ---- host memory ---- */

/** Start of the bytes. */
const void *trt_host_memory_data(const trt_host_memory *memory);
/** Number of bytes. */
size_t trt_host_memory_size(const trt_host_memory *memory);
/** Frees host memory. */
void trt_host_memory_destroy(trt_host_memory *memory);

/* ---- runtime and engine ---- */

/** Creates a runtime. `api` is copied. */
trt_status trt_runtime_create(const trt_entry_points *api, trt_logger *logger, trt_runtime **out);
/** Destroys a runtime. Engines must be destroyed first. */
void trt_runtime_destroy(trt_runtime *runtime);
/** Deserializes an engine. */
trt_status trt_runtime_deserialize(trt_runtime *runtime, const void *data, size_t size, trt_engine **out);
/** The engine is likely valid on this system (`EngineValidity::kVALID`). */
#define TRT_ENGINE_VALID 0
/** Valid, with reduced performance likely (`kSUBOPTIMAL`). */
#define TRT_ENGINE_SUBOPTIMAL 1
/** Invalid on this system (`kINVALID`); the diagnostics say why. */
#define TRT_ENGINE_INVALID 2
/** Diagnostic bit: built by another TensorRT-RTX version. */
#define TRT_ENGINE_VERSION_MISMATCH 0x1
/** Diagnostic bit: the GPU's compute capability is not supported. */
#define TRT_ENGINE_UNSUPPORTED_CC 0x2
/** Diagnostic bit: the CUDA driver is older than at build time. */
#define TRT_ENGINE_OLD_CUDA_DRIVER 0x4
/** Diagnostic bit: the CUDA runtime is older than at build time. */
#define TRT_ENGINE_OLD_CUDA_RUNTIME 0x8
/** Diagnostic bit: not enough GPU memory for the engine's weights. */
#define TRT_ENGINE_INSUFFICIENT_GPU_MEMORY 0x10
/** Diagnostic bit: the bytes are not a well-formed engine. */
#define TRT_ENGINE_MALFORMED 0x20
/** Diagnostic bit: the CUDA driver or runtime is not installed correctly. */
#define TRT_ENGINE_CUDA_ERROR 0x40
/** Checks a serialized engine's header against this system before deserializing it
 * (TensorRT-RTX's `IRuntime::getEngineValidity`): `validity` receives a `TRT_ENGINE_*` validity,
 * `diagnostics` the `TRT_ENGINE_*` bits when invalid. `TRT_ERR_UNSUPPORTED` with full TensorRT,
 * which has no such check. */
trt_status trt_runtime_engine_validity(const trt_runtime *runtime, const void *data, size_t size, int32_t *validity,
                                       uint64_t *diagnostics);
/** Destroys an engine. Contexts must be destroyed first. */
void trt_engine_destroy(trt_engine *engine);
/** Number of I/O tensors. */
int32_t trt_engine_io_count(const trt_engine *engine);
/** Name of I/O tensor `index`. */
trt_status trt_engine_io_name(const trt_engine *engine, int32_t index, const char **name);
/** Mode, element type and dims (with -1 for dynamic) of I/O tensor `name`. */
trt_status trt_engine_tensor(const trt_engine *engine, const char *name, trt_io_mode *mode,
                             trt_data_type *data_type, trt_dims *dims);
/** Number of optimization profiles. */
int32_t trt_engine_profile_count(const trt_engine *engine);
/** One bound of input `name` in profile `profile`. */
trt_status trt_engine_profile_dims(const trt_engine *engine, const char *name, int32_t profile,
                                   trt_profile_selector which, trt_dims *out);
/** Device memory the engine needs for activations, in bytes. */
int64_t trt_engine_device_memory_size(const trt_engine *engine);
/** Engine inspector JSON (`kDETAILED` when available); the caller destroys the memory. */
trt_status trt_engine_inspector_json(const trt_engine *engine, trt_host_memory **out);

/* ---- execution context ---- */

/** Creates an execution context with its own device memory. */
trt_status trt_context_create(trt_engine *engine, trt_context **out);
/** Destroys a context. */
void trt_context_destroy(trt_context *context);
/** Selects the optimization profile; `stream` is a `cudaStream_t`. */
trt_status trt_context_set_profile(trt_context *context, int32_t profile, void *stream);
/** Sets the shape of input `name`. */
trt_status trt_context_set_input_shape(trt_context *context, const char *name, const trt_dims *dims);
/** Binds the device address of tensor `name`. */
trt_status trt_context_set_tensor_address(trt_context *context, const char *name, void *address);
/** Shape of tensor `name` as currently resolved (outputs: after every input shape is set). */
trt_status trt_context_tensor_shape(const trt_context *context, const char *name, trt_dims *out);
/** Enqueues inference on `stream` (`cudaStream_t`). */
trt_status trt_context_enqueue(trt_context *context, void *stream);

#ifdef __cplusplus
}
#endif

#endif /* TRT_SHIM_H */
