//! trt-runtime
