// _core.hash_strings / hash_ints: FarmHash fingerprint64 or keyed SipHash-2-4 over a batch
// (kernels/hash.hpp); checks, output, GIL release.
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <utility>

#include "bind_util.hpp"
#include "kernels/hash.hpp"

namespace nncore::bind {

namespace {

using Key = std::optional<std::pair<uint64_t, uint64_t>>;

py::array hash_strings_py(const py::array& data, const py::array& offsets, const Key& key) {
  if (data.dtype().kind() != 'u' || data.itemsize() != 1 || data.ndim() != 1 ||
      !(data.flags() & py::array::c_style))
    throw py::type_error("data must be a C-contiguous 1-D uint8 array");
  if (offsets.dtype().kind() != 'i' || offsets.itemsize() != 8 || offsets.ndim() != 1 ||
      !(offsets.flags() & py::array::c_style))
    throw py::type_error("offsets must be a C-contiguous 1-D int64 array");
  if (offsets.shape(0) < 1) throw py::value_error("offsets must hold at least one entry (0)");
  const auto* off = static_cast<const int64_t*>(offsets.data());
  const int64_t count = offsets.shape(0) - 1;
  const int64_t size = data.shape(0);
  if (off[0] != 0) throw py::value_error("offsets[0] must be 0");
  for (int64_t i = 0; i < count; ++i)
    if (off[i + 1] < off[i])
      throw py::value_error("offsets must be non-decreasing (at " + std::to_string(i + 1) + ")");
  if (off[count] > size)
    throw py::value_error("offsets[-1] = " + std::to_string(off[count]) +
                          " is past the end of data (" + std::to_string(size) + " bytes)");
  py::array_t<uint64_t> out(count);
  uint64_t* o = out.mutable_data();
  const auto* d = static_cast<const uint8_t*>(data.data());
  {
    py::gil_scoped_release r;
    hash_strings(d, off, count, key.has_value(), key ? key->first : 0, key ? key->second : 0, o);
  }
  return out;
}

py::array hash_ints_py(const py::array& values, const Key& key) {
  if (values.dtype().kind() != 'i' || values.itemsize() != 8 || values.ndim() != 1 ||
      !(values.flags() & py::array::c_style))
    throw py::type_error("values must be a C-contiguous 1-D int64 array");
  const int64_t count = values.shape(0);
  py::array_t<uint64_t> out(count);
  uint64_t* o = out.mutable_data();
  const auto* v = static_cast<const int64_t*>(values.data());
  {
    py::gil_scoped_release r;
    hash_ints(v, count, key.has_value(), key ? key->first : 0, key ? key->second : 0, o);
  }
  return out;
}

}  // namespace

void bind_hash(py::module_& m) {
  m.def("hash_strings", &hash_strings_py, py::arg("data"), py::arg("offsets"),
        py::arg("key") = py::none(),
        "uint64 hash of each data[offsets[i]:offsets[i+1]]: FarmHash fingerprint64, or "
        "SipHash-2-4 under key=(k0, k1).");
  m.def("hash_ints", &hash_ints_py, py::arg("values"), py::arg("key") = py::none(),
        "uint64 hash of each int64's decimal text (fingerprint64, or SipHash-2-4 under key).");
}

}  // namespace nncore::bind
