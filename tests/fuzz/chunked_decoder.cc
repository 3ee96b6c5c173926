// Fuzz target: the chunked body decoder. Input: one split byte, then the bytes after a
// request head. Properties: data views lie inside the piece given, `consumed` never exceeds
// it (and is all of it on need_more), decoded bytes add up, an error has a reason, done and
// error are final, and feeding in pieces decodes exactly what feeding whole does.
#include "fuzz_check.hh"
#include "http/chunked_decoder.hh"

#include <cstring>
#include <memory>
#include <string>

namespace {

using atlas::http::chunked_decoder;
using st = chunked_decoder::status;

struct outcome {
    st status = st::need_more;
    std::string body;
    size_t consumed = 0;
    std::string reason;
};

outcome decode(std::string_view in, const std::vector<size_t> &cuts) {
    chunked_decoder d;
    outcome o;
    size_t from = 0;
    for (size_t cut : cuts) {
        const size_t len = cut - from;
        std::unique_ptr<char[]> buf(new char[len ? len : 1]);
        if (len) std::memcpy(buf.get(), in.data() + from, len);
        size_t used = ~size_t{0};
        o.status = d.feed(std::string_view(buf.get(), len), used, [&](std::string_view s) {
            FUZZ_CHECK(!s.empty());
            FUZZ_CHECK(s.data() >= buf.get() && s.data() + s.size() <= buf.get() + len);
            o.body.append(s);
        });
        FUZZ_CHECK(used <= len);
        if (o.status == st::need_more) FUZZ_CHECK(used == len);
        o.consumed += used;
        from = cut;
        if (o.status != st::need_more) {
            // Final: more bytes change nothing.
            size_t again = 1;
            FUZZ_CHECK(d.feed("0\r\n\r\n", again, [](std::string_view) { FUZZ_CHECK(false); }) == o.status);
            FUZZ_CHECK(again == 0);
            break;
        }
    }
    FUZZ_CHECK(d.body_bytes() == o.body.size());
    if (o.status == st::error) {
        FUZZ_CHECK(d.error_reason() != nullptr);
        o.reason = d.error_reason();
    }
    return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const std::string_view in(reinterpret_cast<const char *>(data) + 1, size - 1);
    const outcome whole = decode(in, {in.size()});
    const outcome pieces = decode(in, atlas::fuzz::cuts(data[0], in.size()));
    FUZZ_CHECK(whole.status == pieces.status);
    FUZZ_CHECK(whole.body == pieces.body);
    FUZZ_CHECK(whole.consumed == pieces.consumed);
    FUZZ_CHECK(whole.reason == pieces.reason);
    return 0;
}
