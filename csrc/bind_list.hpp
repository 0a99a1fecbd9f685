// The binding files of nncore._core, in registration order: adding a family's bind_<name>.cpp
// (defining nncore::bind::bind_<name>(py::module_&)) means adding its name here, nothing else.
// bind_runtime comes first: it refuses a mistyped NNCORE_ISA before anything else is registered.
#pragma once

#define NNCORE_BINDINGS(X) X(runtime) X(gemm) X(train) X(conv) X(pool) X(rnn) X(norm) X(winograd) X(hash) X(affine) X(conv1d)
