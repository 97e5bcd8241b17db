// bench_simdjson.cc - the reference for bench_scan.c: simdjson (Debian's
// libsimdjson-dev) parsing the same body, DOM and On-Demand (a full walk
// of every value, as jscan_skip does). Prints JSON like bench_scan.
//
// usage: bench_simdjson FILE RUNS
#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

static double now_ms()
{
    using namespace std::chrono;
    return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

// Visits every value, so that On-Demand reads (and checks) the whole input.
static size_t walk(simdjson::ondemand::value v)
{
    size_t n = 1;
    switch (v.type()) {
    case simdjson::ondemand::json_type::object:
        for (auto field : v.get_object())
            n += walk(field.value());
        break;
    case simdjson::ondemand::json_type::array:
        for (auto item : v.get_array())
            n += walk(item.value());
        break;
    case simdjson::ondemand::json_type::string:
        (void)v.get_string().value();
        break;
    case simdjson::ondemand::json_type::number:
        (void)v.get_double().value();
        break;
    case simdjson::ondemand::json_type::boolean:
        (void)v.get_bool().value();
        break;
    case simdjson::ondemand::json_type::null:
        (void)v.is_null();
        break;
    }
    return n;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s FILE RUNS\n", argv[0]);
        return 2;
    }
    simdjson::padded_string body;
    if (simdjson::padded_string::load(argv[1]).get(body)) {
        std::perror(argv[1]);
        return 2;
    }
    int runs = std::max(1, std::atoi(argv[2]));
    std::vector<double> dom, od;
    simdjson::dom::parser parser;
    simdjson::ondemand::parser odp;
    for (int i = 0; i < runs; i++) {
        double t0 = now_ms();
        simdjson::dom::element doc;
        if (parser.parse(body).get(doc)) {
            std::fprintf(stderr, "%s: not valid JSON to simdjson\n", argv[1]);
            return 1;
        }
        dom.push_back(now_ms() - t0);
        t0 = now_ms();
        auto d = odp.iterate(body);
        size_t n = walk(d.get_value().value());
        od.push_back(now_ms() - t0);
        if (!n)
            return 1;
    }
    std::sort(dom.begin(), dom.end());
    std::sort(od.begin(), od.end());
    double len = (double)body.size();
    std::printf("{\"bytes\": %zu, \"implementation\": \"%s\", \"dom_median_ms\": %.3f, "
                "\"dom_gbps\": %.2f, \"ondemand_median_ms\": %.3f, \"ondemand_gbps\": %.2f}\n",
                body.size(), simdjson::get_active_implementation()->name().c_str(),
                dom[dom.size() / 2], len / (dom[dom.size() / 2] * 1e6), od[od.size() / 2],
                len / (od[od.size() / 2] * 1e6));
    return 0;
}
