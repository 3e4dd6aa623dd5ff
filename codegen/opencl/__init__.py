"""The OpenCL target: OpenCL C kernels (kernels.py) and the host side of the whole-model schedule
(emit.py), run through the OpenCL ICD loader by runtime/c/llmc_opencl.c."""
