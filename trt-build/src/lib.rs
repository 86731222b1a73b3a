//! trt-build
