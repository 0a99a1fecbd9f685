// String hashes of Keras's hashing layers (through TensorFlow): FarmHash's 64-bit fingerprint
// (tf.strings.to_hash_bucket_fast) and keyed SipHash-2-4 (to_hash_bucket_strong). Scalar code:
// each string is one dependent chain of 64-bit multiplies and rotations, and strings differ in
// length, so there is no vector form worth having; batches go parallel over strings.
// nncore/layers/_hash.py is the reference twin (the tests compare them bit for bit).
#pragma once

#include <cstddef>
#include <cstdint>

namespace nncore {

uint64_t fingerprint64(const uint8_t* s, size_t n);
uint64_t siphash24(uint64_t k0, uint64_t k1, const uint8_t* s, size_t n);

// out[i] = hash of data[offsets[i] : offsets[i + 1]] (fingerprint64, or SipHash-2-4 under
// (k0, k1) when keyed); offsets are checked by the caller (non-decreasing, within data).
void hash_strings(const uint8_t* data, const int64_t* offsets, int64_t count, bool keyed,
                  uint64_t k0, uint64_t k1, uint64_t* out);
// The same over integers hashed as their decimal text (tf.strings.as_string).
void hash_ints(const int64_t* values, int64_t count, bool keyed, uint64_t k0, uint64_t k1,
               uint64_t* out);

}  // namespace nncore
