// Fuzz target: the PROXY protocol v1/v2 parser that reads what a load balancer in front
// says about a connection. Properties: no read outside the input, `done` uses no more than
// was given (and at most max_header), every shorter prefix of a header asks for more
// (parsing is incremental: a slow sender is never refused), `invalid` says why, and a
// parsed header built again by Atlas parses back to the same addresses.
#include "fuzz_check.hh"
#include "net/proxy_protocol.hh"

#include <cstring>
#include <memory>

namespace {

namespace pp = atlas::net::proxy_protocol;

pp::result parse_exact(const uint8_t *data, size_t len, pp::header &h) {
    std::unique_ptr<char[]> buf(new char[len ? len : 1]);
    if (len) std::memcpy(buf.get(), data, len);
    return pp::parse(buf.get(), len, h);
}

void check_round_trip(const pp::header &h) {
    if (h.local) return;
    const std::string built = h.version == 1 ? pp::build_v1(h.source, h.destination)
                                             : pp::build_v2(h.source, h.destination);
    pp::header back;
    const pp::result r = pp::parse(built.data(), built.size(), back);
    FUZZ_CHECK(r.st == pp::status::done && r.used == built.size());
    // v1 says UNKNOWN for mixed families, which is local; otherwise the addresses survive.
    if (back.local) {
        FUZZ_CHECK(h.version == 1 && h.source.family() != h.destination.family());
        return;
    }
    FUZZ_CHECK(to_string(back.source) == to_string(h.source));
    FUZZ_CHECK(to_string(back.destination) == to_string(h.destination));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    pp::header h;
    const pp::result r = parse_exact(data, size, h);
    switch (r.st) {
    case pp::status::done: {
        FUZZ_CHECK(r.used > 0 && r.used <= size && r.used <= pp::max_header);
        FUZZ_CHECK(h.version == 1 || h.version == 2);
        // Every byte of the header was needed: each shorter prefix asks for more. Checked at a
        // few lengths, so one input costs a bounded number of parses.
        for (size_t len : {size_t{0}, r.used / 3, r.used / 2, r.used - 1}) {
            pp::header p;
            FUZZ_CHECK(parse_exact(data, len, p).st == pp::status::need_more);
        }
        check_round_trip(h);
        break;
    }
    case pp::status::need_more:
        FUZZ_CHECK(size < pp::max_header);
        break;
    case pp::status::invalid:
        FUZZ_CHECK(!r.err.empty());
        break;
    }
    return 0;
}
