/*
 * fuzz_config.c - the daemon's YAML config file (config_load_file), over
 * the defaults as main does it. The loader takes a path, so the input goes
 * to one temporary file per process, rewritten each run.
 *
 * Invariants for a file that loads: the limits a client controls stay
 * positive (a zero or negative JSON depth, body size or node count would
 * turn a limit off or reject everything), and the weights stay finite.
 * A file that does not load says why.
 */
#include "fuzz_util.h"

#include "server/config.h"

#include <math.h>
#include <unistd.h>

static char fz_config_path[256];

static void fz_config_setup(void)
{
    if (fz_config_path[0])
        return;
    const char *tmp = getenv("TMPDIR");
    snprintf(fz_config_path, sizeof(fz_config_path), "%s/ce-fuzz-config-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(fz_config_path);
    if (fd < 0) {
        perror("fuzz_config: mkstemp");
        abort();
    }
    close(fd);
}

static void fz_config_cleanup(void)
{
    if (fz_config_path[0])
        unlink(fz_config_path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_config_setup();
    atexit(fz_config_cleanup);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_config_setup();
    FILE *f = fopen(fz_config_path, "wb");
    FUZZ_CHECK(f != NULL);
    FUZZ_CHECK(size == 0 || fwrite(data, 1, size, f) == size);
    FUZZ_CHECK(fclose(f) == 0);
    struct config c;
    config_defaults(&c);
    char err[1024] = "";
    if (config_load_file(&c, fz_config_path, err, sizeof(err))) {
        FUZZ_CHECK(c.max_json_depth > 0 && c.max_body_bytes > 0 && c.max_nodes_per_request > 0);
        FUZZ_CHECK(c.threads >= 0); /* 0: one per CPU */
        FUZZ_CHECK(isfinite(c.cost.spot_risk_weight) && c.cost.spot_risk_weight >= 0);
        FUZZ_CHECK(isfinite(c.cost.packing_weight) && c.cost.packing_weight >= 0 &&
                   c.cost.packing_weight <= 1);
    } else {
        FUZZ_CHECK(err[0] != '\0');
    }
    config_free(&c);
    return 0;
}
