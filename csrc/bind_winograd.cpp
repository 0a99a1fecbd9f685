// _core.set_conv2d_algorithm / get_conv2d_algorithm: which Conv2D algorithm runs ('auto' picks per
// layer shape; 'direct' and 'winograd' force it where it applies, for tests and benchmarks), and
// _core.conv2d_uses_winograd: the choice 'auto' makes for one layer shape.
#include <string>

#include "bind_util.hpp"
#include "kernels/conv2d.hpp"
#include "kernels/conv2d_winograd.hpp"

namespace nncore::bind {

void bind_winograd(py::module_& m) {
  m.def("set_conv2d_algorithm", [](const std::string& name) {
    if (name == "auto") set_conv2d_algo(ConvAlgo::automatic);
    else if (name == "direct") set_conv2d_algo(ConvAlgo::direct);
    else if (name == "winograd") set_conv2d_algo(ConvAlgo::winograd);
    else throw py::value_error("set_conv2d_algorithm: expected 'auto', 'direct' or 'winograd', got '" +
                               name + "'");
  }, py::arg("name"), "Conv2D algorithm for 3x3 stride-1 layers: 'auto', 'direct' or 'winograd'.");
  m.def("get_conv2d_algorithm", []() -> std::string {
    switch (conv2d_algo()) {
      case ConvAlgo::direct: return "direct";
      case ConvAlgo::winograd: return "winograd";
      default: return "auto";
    }
  });
  m.def("conv2d_uses_winograd", [](int64_t n, int64_t h, int64_t w, int64_t c, int64_t f,
                                   int64_t oh, int64_t ow, bool dx, bool dw) {
    Conv2dParams p{};
    p.n = n, p.h = h, p.w = w, p.c = c, p.kh = 3, p.kw = 3, p.f = f, p.oh = oh, p.ow = ow;
    p.sh = p.sw = p.dh = p.dw = 1;
    return dx ? conv2d_use_winograd_dx(p) : dw ? conv2d_use_winograd_dw(p) : conv2d_use_winograd(p);
  }, py::arg("n"), py::arg("h"), py::arg("w"), py::arg("c"), py::arg("f"), py::arg("oh"), py::arg("ow"),
     py::arg("dx") = false, py::arg("dw") = false,
     "Whether a 3x3 stride-1 Conv2D of this shape runs as Winograd under the current setting "
     "(dx=True: the backward's dx convolution, g (OH,OW,F) -> dx (H,W,C) given as (n, OH, OW, F, "
     "C, H, W); dw=True: the backward's weight gradient, the layer's own shape).");
}

}  // namespace nncore::bind
