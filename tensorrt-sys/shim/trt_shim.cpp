// C ABI over the TensorRT C++ API. See trt_shim.h for the conventions.
//
// Compiles against TensorRT 10.x, TensorRT 11.x and TensorRT-RTX 1.x headers; differences are
// selected with the headers' own macros (`TRT_MAJOR_RTX` exists only in TensorRT-RTX,
// `NV_TENSORRT_MAJOR` everywhere). Nothing here links against TensorRT: the three factory
// functions arrive as pointers in `trt_entry_points`, everything else is a virtual call.

#include "trt_shim.h"

// The timing cache API is deprecated in TensorRT-RTX but still present; we use it on purpose.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

#include <NvInfer.h>
#include <NvOnnxParser.h>

#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>

#if defined(TRT_MAJOR_RTX)
#define TRT_SHIM_RTX 1
#else
#define TRT_SHIM_RTX 0
#endif

// TensorRT 11 and TensorRT-RTX are always strongly typed and have no precision flags.
#if TRT_SHIM_RTX || NV_TENSORRT_MAJOR >= 11
#define TRT_SHIM_ALWAYS_STRONGLY_TYPED 1
#else
#define TRT_SHIM_ALWAYS_STRONGLY_TYPED 0
#endif

using namespace nvinfer1;

namespace {

thread_local std::string g_last_error;
// Error-severity messages TensorRT logged on this thread during the current call; appended to
// the status message so that "returned null" explains itself.
thread_local std::string g_logged_errors;

void begin_call() {
    g_last_error.clear();
    g_logged_errors.clear();
}

trt_status fail(trt_status status, const std::string &message) {
    g_last_error = message;
    if (!g_logged_errors.empty()) {
        g_last_error += ": ";
        g_last_error += g_logged_errors;
    }
    return status;
}

trt_status tensorrt_failed(const char *what) {
    return fail(TRT_ERR_TENSORRT, std::string(what) + " failed");
}

trt_status invalid(const char *what) { return fail(TRT_ERR_INVALID_ARGUMENT, what); }

// Runs `body`, turning any C++ exception into a status.
template <typename F> trt_status guarded(F &&body) noexcept {
    try {
        begin_call();
        return body();
    } catch (const std::bad_alloc &) {
        return fail(TRT_ERR_EXCEPTION, "out of host memory (std::bad_alloc)");
    } catch (const std::exception &e) {
        return fail(TRT_ERR_EXCEPTION, std::string("C++ exception: ") + e.what());
    } catch (...) {
        return fail(TRT_ERR_EXCEPTION, "unknown C++ exception");
    }
}

bool to_dims(const trt_dims *in, Dims &out) {
    if (in == nullptr || in->nb_dims < 0 || in->nb_dims > Dims::MAX_DIMS || in->nb_dims > TRT_MAX_DIMS) {
        return false;
    }
    out.nbDims = in->nb_dims;
    for (int32_t i = 0; i < in->nb_dims; ++i) {
        out.d[i] = in->d[i];
    }
    return true;
}

void from_dims(const Dims &in, trt_dims *out) {
    out->nb_dims = in.nbDims;
    std::memset(out->d, 0, sizeof(out->d));
    for (int32_t i = 0; i < in.nbDims && i < TRT_MAX_DIMS; ++i) {
        out->d[i] = in.d[i];
    }
}

const char *or_empty(const char *s) { return s == nullptr ? "" : s; }

class ShimLogger final : public ILogger {
  public:
    ShimLogger(trt_log_fn fn, void *user, trt_severity max) : fn_(fn), user_(user), max_(max) {}

    void log(Severity severity, AsciiChar const *msg) noexcept override {
        try {
            auto level = static_cast<trt_severity>(severity);
            if (level <= static_cast<trt_severity>(Severity::kERROR) && msg != nullptr) {
                if (!g_logged_errors.empty()) {
                    g_logged_errors += "; ";
                }
                g_logged_errors += msg;
            }
            if (fn_ != nullptr && level <= max_) {
                fn_(user_, level, or_empty(msg));
            }
        } catch (...) {
            // A logger must not throw into TensorRT; dropping the message is the only option.
        }
    }

  private:
    trt_log_fn fn_;
    void *user_;
    trt_severity max_;
};

class ShimProgress final : public IProgressMonitor {
  public:
    ShimProgress(trt_progress_callbacks cb, void *user) : cb_(cb), user_(user) {}

    void phaseStart(char const *phase, char const *parent, int32_t steps) noexcept override {
        if (cb_.phase_start != nullptr) {
            cb_.phase_start(user_, or_empty(phase), parent, steps);
        }
    }
    bool stepComplete(char const *phase, int32_t step) noexcept override {
        return cb_.step_complete == nullptr || cb_.step_complete(user_, or_empty(phase), step);
    }
    void phaseFinish(char const *phase) noexcept override {
        if (cb_.phase_finish != nullptr) {
            cb_.phase_finish(user_, or_empty(phase));
        }
    }

  private:
    trt_progress_callbacks cb_;
    void *user_;
};

} // namespace

struct trt_logger {
    ShimLogger logger;
};

struct trt_builder {
    trt_entry_points api;
    trt_logger *logger;
    std::unique_ptr<IBuilder> builder;
};

struct trt_network {
    // Declared first so that it is destroyed last: the network refers to weights the parser owns.
    std::unique_ptr<nvonnxparser::IParser> parser;
    std::unique_ptr<INetworkDefinition> network;
};

struct trt_profile {
    IOptimizationProfile *profile; // owned by the builder
};

struct trt_config {
    std::unique_ptr<IBuilderConfig> config;
    std::unique_ptr<ITimingCache> timing_cache;
    std::unique_ptr<ShimProgress> progress;
};

struct trt_host_memory {
    std::unique_ptr<IHostMemory> memory;
    std::string text;
};

struct trt_runtime {
    trt_logger *logger;
    std::unique_ptr<IRuntime> runtime;
};

struct trt_engine {
    std::unique_ptr<ICudaEngine> engine;
};

struct trt_context {
    std::unique_ptr<IExecutionContext> context;
};

extern "C" {

int32_t trt_header_version(void) { return NV_TENSORRT_VERSION; }

int32_t trt_header_parser_version(void) { return NV_ONNX_PARSER_VERSION; }

trt_flavor trt_header_flavor(void) { return TRT_SHIM_RTX ? TRT_FLAVOR_RTX : TRT_FLAVOR_TENSORRT; }

const char *trt_last_error(void) { return g_last_error.c_str(); }

trt_status trt_logger_create(trt_log_fn log, void *user, trt_severity max_severity, trt_logger **out) {
    return guarded([&] {
        if (out == nullptr) {
            return invalid("trt_logger_create: out is null");
        }
        *out = new trt_logger{ShimLogger(log, user, max_severity)};
        return TRT_OK;
    });
}

void trt_logger_destroy(trt_logger *logger) { delete logger; }

trt_status trt_builder_create(const trt_entry_points *api, trt_logger *logger, trt_builder **out) {
    return guarded([&] {
        if (api == nullptr || api->create_infer_builder == nullptr || logger == nullptr || out == nullptr) {
            return invalid("trt_builder_create: null argument or missing createInferBuilder_INTERNAL");
        }
        auto *raw = static_cast<IBuilder *>(api->create_infer_builder(&logger->logger, NV_TENSORRT_VERSION));
        if (raw == nullptr) {
            return tensorrt_failed("createInferBuilder");
        }
        *out = new trt_builder{*api, logger, std::unique_ptr<IBuilder>(raw)};
        return TRT_OK;
    });
}

void trt_builder_destroy(trt_builder *builder) { delete builder; }

trt_status trt_network_from_onnx(trt_builder *builder, const void *data, size_t size, const char *model_path,
                                 bool strongly_typed, trt_network **out) {
    return guarded([&] {
        if (builder == nullptr || (data == nullptr && size != 0) || out == nullptr) {
            return invalid("trt_network_from_onnx: null argument");
        }
        *out = nullptr;
        if (builder->api.create_onnx_parser == nullptr) {
            return invalid("the ONNX parser library is not loaded (createNvOnnxParser_INTERNAL missing)");
        }
        NetworkDefinitionCreationFlags flags = 0;
#if !TRT_SHIM_ALWAYS_STRONGLY_TYPED
        if (strongly_typed) {
            flags |= 1U << static_cast<uint32_t>(NetworkDefinitionCreationFlag::kSTRONGLY_TYPED);
        }
#else
        (void)strongly_typed;
#endif
        std::unique_ptr<INetworkDefinition> network(builder->builder->createNetworkV2(flags));
        if (!network) {
            return tensorrt_failed("createNetworkV2");
        }
        auto *parser_raw = static_cast<nvonnxparser::IParser *>(
            builder->api.create_onnx_parser(network.get(), &builder->logger->logger, NV_ONNX_PARSER_VERSION));
        if (parser_raw == nullptr) {
            return tensorrt_failed("createNvOnnxParser");
        }
        auto *result = new trt_network{std::unique_ptr<nvonnxparser::IParser>(parser_raw), std::move(network)};
        *out = result;
        if (!result->parser->parse(data, size, model_path)) {
            int32_t n = result->parser->getNbErrors();
            std::string msg = "the ONNX parser reported " + std::to_string(n) + " error(s)";
            if (n > 0) {
                auto const *e = result->parser->getError(0);
                msg += "; first: ";
                msg += or_empty(e->desc());
            }
            return fail(TRT_ERR_PARSE, msg);
        }
        if (result->network->getNbOutputs() == 0) {
            // Protobuf accepts many byte strings as an (empty) ModelProto.
            return fail(TRT_ERR_PARSE, "the ONNX model defines no graph outputs (empty graph, or bytes that are "
                                       "not an ONNX model)");
        }
        return TRT_OK;
    });
}

void trt_network_destroy(trt_network *network) {
    if (network != nullptr) {
        network->network.reset();
        network->parser.reset();
        delete network;
    }
}

int32_t trt_network_parser_error_count(const trt_network *network) {
    if (network == nullptr || !network->parser) {
        return 0;
    }
    return network->parser->getNbErrors();
}

trt_status trt_network_parser_error(const trt_network *network, int32_t index, trt_parser_error *out) {
    return guarded([&] {
        if (network == nullptr || out == nullptr || index < 0 || index >= network->parser->getNbErrors()) {
            return invalid("trt_network_parser_error: bad network or index");
        }
        auto const *e = network->parser->getError(index);
        if (e == nullptr) {
            return tensorrt_failed("IParser::getError");
        }
        out->code = static_cast<int32_t>(e->code());
        out->node = e->node();
        out->node_name = or_empty(e->nodeName());
        out->node_operator = or_empty(e->nodeOperator());
        out->desc = or_empty(e->desc());
        out->file = or_empty(e->file());
        out->line = e->line();
        out->func = or_empty(e->func());
        return TRT_OK;
    });
}

int32_t trt_network_input_count(const trt_network *network) {
    return network == nullptr || !network->network ? 0 : network->network->getNbInputs();
}

int32_t trt_network_output_count(const trt_network *network) {
    return network == nullptr || !network->network ? 0 : network->network->getNbOutputs();
}

trt_status trt_network_tensor(const trt_network *network, bool is_input, int32_t index, const char **name,
                              trt_dims *dims, trt_data_type *data_type) {
    return guarded([&] {
        if (network == nullptr || !network->network || name == nullptr || dims == nullptr || data_type == nullptr) {
            return invalid("trt_network_tensor: null argument");
        }
        int32_t count = is_input ? network->network->getNbInputs() : network->network->getNbOutputs();
        if (index < 0 || index >= count) {
            return invalid("trt_network_tensor: index out of range");
        }
        ITensor *t = is_input ? network->network->getInput(index) : network->network->getOutput(index);
        if (t == nullptr) {
            return tensorrt_failed("INetworkDefinition::getInput/getOutput");
        }
        *name = or_empty(t->getName());
        from_dims(t->getDimensions(), dims);
        *data_type = static_cast<trt_data_type>(t->getType());
        return TRT_OK;
    });
}

trt_status trt_profile_create(trt_builder *builder, trt_profile **out) {
    return guarded([&] {
        if (builder == nullptr || out == nullptr) {
            return invalid("trt_profile_create: null argument");
        }
        IOptimizationProfile *p = builder->builder->createOptimizationProfile();
        if (p == nullptr) {
            return tensorrt_failed("createOptimizationProfile");
        }
        *out = new trt_profile{p};
        return TRT_OK;
    });
}

void trt_profile_destroy(trt_profile *profile) { delete profile; }

trt_status trt_profile_set_dims(trt_profile *profile, const char *name, trt_profile_selector which,
                                const trt_dims *dims) {
    return guarded([&] {
        Dims d{};
        if (profile == nullptr || name == nullptr || which < TRT_PROFILE_MIN || which > TRT_PROFILE_MAX) {
            return invalid("trt_profile_set_dims: bad argument");
        }
        if (!to_dims(dims, d)) {
            return invalid("trt_profile_set_dims: rank must be between 0 and 8");
        }
        if (!profile->profile->setDimensions(name, static_cast<OptProfileSelector>(which), d)) {
            return fail(TRT_ERR_TENSORRT, std::string("IOptimizationProfile::setDimensions rejected input '") +
                                              name + "'");
        }
        return TRT_OK;
    });
}

trt_status trt_config_create(trt_builder *builder, trt_config **out) {
    return guarded([&] {
        if (builder == nullptr || out == nullptr) {
            return invalid("trt_config_create: null argument");
        }
        std::unique_ptr<IBuilderConfig> config(builder->builder->createBuilderConfig());
        if (!config) {
            return tensorrt_failed("createBuilderConfig");
        }
        *out = new trt_config{std::move(config), nullptr, nullptr};
        return TRT_OK;
    });
}

void trt_config_destroy(trt_config *config) {
    if (config != nullptr) {
        config->config.reset();
        delete config;
    }
}

trt_status trt_config_add_profile(trt_config *config, const trt_profile *profile, int32_t *index) {
    return guarded([&] {
        if (config == nullptr || profile == nullptr || index == nullptr) {
            return invalid("trt_config_add_profile: null argument");
        }
        if (!profile->profile->isValid()) {
            return fail(TRT_ERR_INVALID_ARGUMENT,
                        "the optimization profile is invalid (every dynamic input needs min <= opt <= max)");
        }
        int32_t i = config->config->addOptimizationProfile(profile->profile);
        if (i < 0) {
            return tensorrt_failed("IBuilderConfig::addOptimizationProfile");
        }
        *index = i;
        return TRT_OK;
    });
}

trt_status trt_config_set_memory_pool_limit(trt_config *config, trt_memory_pool pool, size_t bytes) {
    return guarded([&] {
        if (config == nullptr) {
            return invalid("trt_config_set_memory_pool_limit: null config");
        }
        config->config->setMemoryPoolLimit(static_cast<MemoryPoolType>(pool), bytes);
        return TRT_OK;
    });
}

trt_status trt_config_set_optimization_level(trt_config *config, int32_t level) {
    return guarded([&] {
        if (config == nullptr || level < 0 || level > 5) {
            return invalid("trt_config_set_optimization_level: level must be 0..=5");
        }
        config->config->setBuilderOptimizationLevel(level);
        return TRT_OK;
    });
}

trt_status trt_config_set_fp16(trt_config *config, bool enable) {
    return guarded([&] {
        if (config == nullptr) {
            return invalid("trt_config_set_fp16: null config");
        }
#if TRT_SHIM_ALWAYS_STRONGLY_TYPED
        (void)enable;
        return fail(TRT_ERR_UNSUPPORTED, "this TensorRT flavor is always strongly typed and has no FP16 builder "
                                         "flag: convert the ONNX to FP16 instead");
#else
        if (enable) {
            config->config->setFlag(BuilderFlag::kFP16);
        } else {
            config->config->clearFlag(BuilderFlag::kFP16);
        }
        return TRT_OK;
#endif
    });
}

trt_status trt_config_set_timing_cache(trt_config *config, const void *blob, size_t size) {
    return guarded([&] {
        if (config == nullptr || (blob == nullptr && size != 0)) {
            return invalid("trt_config_set_timing_cache: null argument");
        }
        std::unique_ptr<ITimingCache> cache(config->config->createTimingCache(blob, size));
        if (!cache) {
            return tensorrt_failed("IBuilderConfig::createTimingCache");
        }
        if (!config->config->setTimingCache(*cache, false)) {
            return tensorrt_failed("IBuilderConfig::setTimingCache");
        }
        config->timing_cache = std::move(cache);
        return TRT_OK;
    });
}

trt_status trt_config_serialize_timing_cache(const trt_config *config, trt_host_memory **out) {
    return guarded([&] {
        if (config == nullptr || out == nullptr) {
            return invalid("trt_config_serialize_timing_cache: null argument");
        }
        const ITimingCache *cache = config->config->getTimingCache();
        if (cache == nullptr) {
            return invalid("no timing cache is set on this config");
        }
        std::unique_ptr<IHostMemory> mem(cache->serialize());
        if (!mem) {
            return tensorrt_failed("ITimingCache::serialize");
        }
        *out = new trt_host_memory{std::move(mem), {}};
        return TRT_OK;
    });
}

trt_status trt_config_set_progress(trt_config *config, const trt_progress_callbacks *callbacks, void *user) {
    return guarded([&] {
        if (config == nullptr || callbacks == nullptr) {
            return invalid("trt_config_set_progress: null argument");
        }
        auto progress = std::make_unique<ShimProgress>(*callbacks, user);
        config->config->setProgressMonitor(progress.get());
        config->progress = std::move(progress);
        return TRT_OK;
    });
}

trt_status trt_builder_build_serialized(trt_builder *builder, trt_network *network, trt_config *config,
                                        trt_host_memory **out) {
    return guarded([&] {
        if (builder == nullptr || network == nullptr || !network->network || config == nullptr || out == nullptr) {
            return invalid("trt_builder_build_serialized: null argument");
        }
        std::unique_ptr<IHostMemory> mem(builder->builder->buildSerializedNetwork(*network->network, *config->config));
        if (!mem || mem->size() == 0) {
            return tensorrt_failed("IBuilder::buildSerializedNetwork");
        }
        *out = new trt_host_memory{std::move(mem), {}};
        return TRT_OK;
    });
}

const void *trt_host_memory_data(const trt_host_memory *memory) {
    if (memory == nullptr) {
        return nullptr;
    }
    return memory->memory ? memory->memory->data() : memory->text.data();
}

size_t trt_host_memory_size(const trt_host_memory *memory) {
    if (memory == nullptr) {
        return 0;
    }
    return memory->memory ? memory->memory->size() : memory->text.size();
}

void trt_host_memory_destroy(trt_host_memory *memory) { delete memory; }

trt_status trt_runtime_create(const trt_entry_points *api, trt_logger *logger, trt_runtime **out) {
    return guarded([&] {
        if (api == nullptr || api->create_infer_runtime == nullptr || logger == nullptr || out == nullptr) {
            return invalid("trt_runtime_create: null argument or missing createInferRuntime_INTERNAL");
        }
        auto *raw = static_cast<IRuntime *>(api->create_infer_runtime(&logger->logger, NV_TENSORRT_VERSION));
        if (raw == nullptr) {
            return tensorrt_failed("createInferRuntime");
        }
        *out = new trt_runtime{logger, std::unique_ptr<IRuntime>(raw)};
        return TRT_OK;
    });
}

void trt_runtime_destroy(trt_runtime *runtime) { delete runtime; }

trt_status trt_runtime_deserialize(trt_runtime *runtime, const void *data, size_t size, trt_engine **out) {
    return guarded([&] {
        if (runtime == nullptr || data == nullptr || size == 0 || out == nullptr) {
            return invalid("trt_runtime_deserialize: null or empty engine");
        }
        std::unique_ptr<ICudaEngine> engine(runtime->runtime->deserializeCudaEngine(data, size));
        if (!engine) {
            return tensorrt_failed("IRuntime::deserializeCudaEngine");
        }
        *out = new trt_engine{std::move(engine)};
        return TRT_OK;
    });
}

trt_status trt_runtime_engine_validity(const trt_runtime *runtime, const void *data, size_t size, int32_t *validity,
                                       uint64_t *diagnostics) {
    return guarded([&] {
        if (runtime == nullptr || data == nullptr || size == 0 || validity == nullptr || diagnostics == nullptr) {
            return invalid("trt_runtime_engine_validity: null or empty engine");
        }
#if TRT_SHIM_RTX
        using D = EngineInvalidityDiagnostics;
        static_assert(static_cast<uint64_t>(D::kVERSION_MISMATCH) == TRT_ENGINE_VERSION_MISMATCH);
        static_assert(static_cast<uint64_t>(D::kUNSUPPORTED_CC) == TRT_ENGINE_UNSUPPORTED_CC);
        static_assert(static_cast<uint64_t>(D::kOLD_CUDA_DRIVER) == TRT_ENGINE_OLD_CUDA_DRIVER);
        static_assert(static_cast<uint64_t>(D::kOLD_CUDA_RUNTIME) == TRT_ENGINE_OLD_CUDA_RUNTIME);
        static_assert(static_cast<uint64_t>(D::kINSUFFICIENT_GPU_MEMORY) == TRT_ENGINE_INSUFFICIENT_GPU_MEMORY);
        static_assert(static_cast<uint64_t>(D::kMALFORMED_ENGINE) == TRT_ENGINE_MALFORMED);
        static_assert(static_cast<uint64_t>(D::kCUDA_ERROR) == TRT_ENGINE_CUDA_ERROR);
        static_assert(static_cast<int32_t>(EngineValidity::kINVALID) == TRT_ENGINE_INVALID);
        uint64_t bits = 0;
        *validity = static_cast<int32_t>(
            runtime->runtime->getEngineValidity(data, static_cast<int64_t>(size), &bits));
        *diagnostics = bits;
        return TRT_OK;
#else
        return fail(TRT_ERR_UNSUPPORTED, "full TensorRT has no engine validity check (TensorRT-RTX only)");
#endif
    });
}

void trt_engine_destroy(trt_engine *engine) { delete engine; }

int32_t trt_engine_io_count(const trt_engine *engine) { return engine == nullptr ? 0 : engine->engine->getNbIOTensors(); }

trt_status trt_engine_io_name(const trt_engine *engine, int32_t index, const char **name) {
    return guarded([&] {
        if (engine == nullptr || name == nullptr || index < 0 || index >= engine->engine->getNbIOTensors()) {
            return invalid("trt_engine_io_name: bad engine or index");
        }
        *name = or_empty(engine->engine->getIOTensorName(index));
        return TRT_OK;
    });
}

trt_status trt_engine_tensor(const trt_engine *engine, const char *name, trt_io_mode *mode, trt_data_type *data_type,
                             trt_dims *dims) {
    return guarded([&] {
        if (engine == nullptr || name == nullptr || mode == nullptr || data_type == nullptr || dims == nullptr) {
            return invalid("trt_engine_tensor: null argument");
        }
        TensorIOMode m = engine->engine->getTensorIOMode(name);
        if (m == TensorIOMode::kNONE) {
            return fail(TRT_ERR_INVALID_ARGUMENT, std::string("the engine has no I/O tensor named '") + name + "'");
        }
        *mode = static_cast<trt_io_mode>(m);
        *data_type = static_cast<trt_data_type>(engine->engine->getTensorDataType(name));
        from_dims(engine->engine->getTensorShape(name), dims);
        return TRT_OK;
    });
}

int32_t trt_engine_profile_count(const trt_engine *engine) {
    return engine == nullptr ? 0 : engine->engine->getNbOptimizationProfiles();
}

trt_status trt_engine_profile_dims(const trt_engine *engine, const char *name, int32_t profile,
                                   trt_profile_selector which, trt_dims *out) {
    return guarded([&] {
        if (engine == nullptr || name == nullptr || out == nullptr || which < TRT_PROFILE_MIN ||
            which > TRT_PROFILE_MAX || profile < 0 || profile >= engine->engine->getNbOptimizationProfiles()) {
            return invalid("trt_engine_profile_dims: bad argument");
        }
        from_dims(engine->engine->getProfileShape(name, profile, static_cast<OptProfileSelector>(which)), out);
        return TRT_OK;
    });
}

int64_t trt_engine_device_memory_size(const trt_engine *engine) {
    return engine == nullptr ? 0 : engine->engine->getDeviceMemorySizeV2();
}

trt_status trt_engine_inspector_json(const trt_engine *engine, trt_host_memory **out) {
    return guarded([&] {
        if (engine == nullptr || out == nullptr) {
            return invalid("trt_engine_inspector_json: null argument");
        }
        std::unique_ptr<IEngineInspector> inspector(engine->engine->createEngineInspector());
        if (!inspector) {
            return tensorrt_failed("ICudaEngine::createEngineInspector");
        }
        const char *json = inspector->getEngineInformation(LayerInformationFormat::kJSON);
        if (json == nullptr) {
            return tensorrt_failed("IEngineInspector::getEngineInformation");
        }
        *out = new trt_host_memory{nullptr, std::string(json)};
        return TRT_OK;
    });
}

trt_status trt_context_create(trt_engine *engine, trt_context **out) {
    return guarded([&] {
        if (engine == nullptr || out == nullptr) {
            return invalid("trt_context_create: null argument");
        }
        std::unique_ptr<IExecutionContext> ctx(engine->engine->createExecutionContext());
        if (!ctx) {
            return tensorrt_failed("ICudaEngine::createExecutionContext");
        }
        *out = new trt_context{std::move(ctx)};
        return TRT_OK;
    });
}

void trt_context_destroy(trt_context *context) { delete context; }

trt_status trt_context_set_profile(trt_context *context, int32_t profile, void *stream) {
    return guarded([&] {
        if (context == nullptr) {
            return invalid("trt_context_set_profile: null context");
        }
        if (!context->context->setOptimizationProfileAsync(profile, static_cast<cudaStream_t>(stream))) {
            return tensorrt_failed("IExecutionContext::setOptimizationProfileAsync");
        }
        return TRT_OK;
    });
}

trt_status trt_context_set_input_shape(trt_context *context, const char *name, const trt_dims *dims) {
    return guarded([&] {
        Dims d{};
        if (context == nullptr || name == nullptr || !to_dims(dims, d)) {
            return invalid("trt_context_set_input_shape: bad argument");
        }
        if (!context->context->setInputShape(name, d)) {
            return fail(TRT_ERR_TENSORRT, std::string("IExecutionContext::setInputShape rejected '") + name + "'");
        }
        return TRT_OK;
    });
}

trt_status trt_context_set_tensor_address(trt_context *context, const char *name, void *address) {
    return guarded([&] {
        if (context == nullptr || name == nullptr) {
            return invalid("trt_context_set_tensor_address: null argument");
        }
        if (!context->context->setTensorAddress(name, address)) {
            return fail(TRT_ERR_TENSORRT, std::string("IExecutionContext::setTensorAddress rejected '") + name + "'");
        }
        return TRT_OK;
    });
}

trt_status trt_context_tensor_shape(const trt_context *context, const char *name, trt_dims *out) {
    return guarded([&] {
        if (context == nullptr || name == nullptr || out == nullptr) {
            return invalid("trt_context_tensor_shape: null argument");
        }
        from_dims(context->context->getTensorShape(name), out);
        return TRT_OK;
    });
}

trt_status trt_context_enqueue(trt_context *context, void *stream) {
    return guarded([&] {
        if (context == nullptr) {
            return invalid("trt_context_enqueue: null context");
        }
        if (!context->context->enqueueV3(static_cast<cudaStream_t>(stream))) {
            return tensorrt_failed("IExecutionContext::enqueueV3");
        }
        return TRT_OK;
    });
}

} // extern "C"
