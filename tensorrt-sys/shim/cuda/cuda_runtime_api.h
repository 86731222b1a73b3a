/*
 * Minimal stand-in for the CUDA runtime header, used only when no CUDA toolkit is configured.
 * TensorRT's headers need nothing from CUDA but these opaque handle types; the shim passes them
 * through as pointers and never calls CUDA itself.
 */
#ifndef TRT_SHIM_CUDA_STANDIN_H
#define TRT_SHIM_CUDA_STANDIN_H
typedef struct CUstream_st *cudaStream_t;
typedef struct CUevent_st *cudaEvent_t;
#endif
