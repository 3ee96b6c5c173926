#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>

#include "config.hh"

using namespace atlas::tls;

namespace {

std::string error_of(const std::string &json, bool client = false) {
    try {
        if (client) delete parse_client(json, "upstream.a.tls", "/nonexistent-dir");
        else delete parse_server(json, "listener.web.chain[0]", "/nonexistent-dir");
    } catch (const std::exception &e) {
        return e.what();
    }
    return "";
}

bool has(const std::string &text, const std::string &part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("a listener's table needs a certificate, and names its problems") {
    CHECK(has(error_of("{}"), "tls: needs a certificate"));
    CHECK(has(error_of(R"({"cert":"a.pem"})"), "tls: needs key"));
    CHECK(has(error_of(R"({"cert":"a.pem","key":"a.key"})"), "tls.cert: cannot read '/nonexistent-dir/a.pem': No such file"));
    CHECK(has(error_of(R"({"certificates":[]})"), "certificates: must be a list"));
    CHECK(has(error_of(R"({"certificates":[{"cert":"/a","key":"/b","sni":"x"}]})"), "certificates[0].sni: unknown key"));
    CHECK(has(error_of(R"({"cert":"/tmp","key":"/tmp"})"), "'/tmp' is not a regular file"));
    CHECK(has(error_of(R"({"colour":"blue"})"), "colour: unknown key"));
}

TEST_CASE("a file that is not PEM is named as such") {
    char path[] = "/tmp/atlas-tls-test-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, "not a certificate\n", 18) == 18);
    close(fd);
    std::string json = std::string(R"({"cert":")") + path + R"(","key":")" + path + R"("})";
    CHECK(has(error_of(json), std::string("'") + path + "' is not a PEM certificate"));
    unlink(path);
}

TEST_CASE("protocol settings: versions, ciphers, groups, ALPN") {
    CHECK(has(error_of(R"({"min_version":"1.1"})"), "min_version: TLS 1.1 is not offered"));
    CHECK(has(error_of(R"({"min_version":"2"})"), "min_version: must be \"1.2\" or \"1.3\""));
    CHECK(has(error_of(R"({"ciphers":"ECDHE-ECDSA-AES128-GCM-SHA256:NOPE-CIPHER"})"), "ciphers: unknown cipher 'NOPE-CIPHER'"));
    CHECK(has(error_of(R"({"ciphers":["TLS13-AES128-GCM-SHA256"]})"), "is a TLS 1.3 suite: list it under ciphersuites"));
    CHECK(has(error_of(R"({"ciphersuites":"ECDHE-RSA-AES128-GCM-SHA256"})"), "is a TLS 1.2 cipher: list it under ciphers"));
    CHECK(has(error_of(R"({"groups":["x25519","brainpool"]})"), "groups: unknown group 'brainpool'"));
    CHECK(has(error_of(R"({"session_tickets":"yes"})"), "session_tickets: must be true or false"));
    CHECK(has(error_of(R"({"ticket_lifetime":"10s"})"), "ticket_lifetime: must be at least 1m"));
}

TEST_CASE("the client side: defaults, names and errors") {
    client_config *c = parse_client(R"({"sni":"API.Internal","verify":false,"alpn":["http/1.1"]})", "upstream.a.tls", "/");
    CHECK(c->server_name == "api.internal");
    CHECK_FALSE(c->verify);
    CHECK(c->proto.alpn == std::vector<std::string>{"http/1.1"});
    CHECK(c->proto.cipher_list == default_cipher_list());
    delete c;
    CHECK(has(error_of(R"({"ca":"missing.pem"})", true), "ca: cannot read '/nonexistent-dir/missing.pem'"));
    CHECK(has(error_of(R"({"cert":"c.pem"})", true), "tls: needs key"));
    CHECK(has(error_of(R"({"insecure":true})", true), "insecure: unknown key"));
}

TEST_CASE("the default cipher order follows the build: ChaCha20 first without AES-NI") {
    std::string d = default_cipher_list();
    size_t chacha = d.find("TLS13-CHACHA20-POLY1305-SHA256"), aes = d.find("TLS13-AES128-GCM-SHA256");
    REQUIRE(chacha != std::string::npos);
    REQUIRE(aes != std::string::npos);
    CHECK((aes_accelerated() ? aes < chacha : chacha < aes));
    CHECK(d.find("CBC") == std::string::npos);  // AEADs only
    // Forward secrecy only: every TLS 1.2 entry is an ECDHE one.
    for (size_t a = 0, b; a < d.size(); a = b + 1) {
        b = d.find(':', a);
        if (b == std::string::npos) b = d.size();
        std::string name = d.substr(a, b - a);
        CHECK((name.rfind("TLS13-", 0) == 0 || name.rfind("ECDHE-", 0) == 0));
    }
}
