#include "control/config_watch.hh"

#include <doctest/doctest.h>

using atlas::control::is_config_name;

// Which names in a watched directory start a reload (the files read themselves always do).
// An integration test cannot show a name is ignored: the debounce would merge it into
// the next real change.
TEST_CASE("is_config_name: new or removed config files, not editors' temporaries") {
    for (const char *yes : {"atlas.toml", "10-sites.toml", "conf.d", "..data"}) {
        CAPTURE(yes);
        CHECK(is_config_name(yes));
    }
    for (const char *no : {"", ".atlas.toml.swp", ".#atlas.toml", ".atlas.toml", "atlas.toml~", "atlas.toml.tmp-new",
                           "4913", "notes.txt", "atlasd.pid", "atlasd.pid.takeover", "..2026_12_07"}) {
        CAPTURE(no);
        CHECK_FALSE(is_config_name(no));
    }
}
