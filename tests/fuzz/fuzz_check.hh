// What a fuzz target uses to say a property broke: libFuzzer (and the corpus replay) treat
// an abort as a crash and keep the input that caused it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

#define FUZZ_CHECK(cond)                                                                        \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            std::fprintf(stderr, "%s:%d: property broken: %s\n", __FILE__, __LINE__, #cond);   \
            std::abort();                                                                       \
        }                                                                                       \
    } while (0)

namespace atlas::fuzz {

// Cut points for feeding `n` bytes in pieces, ascending, the last one n: drawn from `seed`
// (the fuzzer's first input byte), so the fuzzer explores the splits too. A zero seed
// means one piece.
inline std::vector<size_t> cuts(uint8_t seed, size_t n) {
    std::vector<size_t> out;
    if (seed != 0 && n > 0) {
        uint32_t x = seed * 2654435761u;
        size_t at = 0;
        for (;;) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            at += 1 + x % (seed % 64 + 1);  // pieces of 1..64 bytes
            if (at >= n) break;
            out.push_back(at);
        }
    }
    out.push_back(n);
    return out;
}

}  // namespace atlas::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
