/* The baseline of kvmgen's engine rows in `make bench`: a plain C loop of the E12
 * access rule for one address space, written as directly as C allows.
 *
 * State: a stamp and a RAM bit per gfn, and a one-entry MMIO cache per vCPU.
 * Input (a file written by bench/run.py): the event count n, then n bytes of
 * event kinds (255: a `flags` update that bumps the generation, else the vCPU of
 * an access), then n int32 gfns, then the gfn count and the RAM bits, one byte
 * per gfn. Only the loop is timed, with CPU time; the best of `rounds` loops is
 * printed, with the outcome counts that bench/run.py compares with the engine's.
 *
 *     cc -O2 -o access_rule access_rule.c && ./access_rule EVENTS_FILE ROUNDS
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define UPDATE 255
#define MMIO_MASK 0x7ffffULL /* E12: 19-bit MMIO generation, checked and stored */
#define LIVE (1ULL << 62)   /* set in a stamp once an SPTE is installed */
#define MAX_VCPUS 255

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void *read_exact(FILE *in, size_t bytes)
{
    void *out = malloc(bytes ? bytes : 1);
    if (!out || fread(out, 1, bytes, in) != bytes) {
        fprintf(stderr, "access_rule: short input\n");
        exit(2);
    }
    return out;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: access_rule EVENTS_FILE ROUNDS\n");
        return 2;
    }
    FILE *in = fopen(argv[1], "rb");
    if (!in) {
        perror(argv[1]);
        return 2;
    }
    int64_t n, gfns;
    if (fread(&n, sizeof n, 1, in) != 1)
        return 2;
    uint8_t *kind = read_exact(in, (size_t)n);
    int32_t *gfn = read_exact(in, (size_t)n * sizeof *gfn);
    if (fread(&gfns, sizeof gfns, 1, in) != 1)
        return 2;
    uint8_t *ram = read_exact(in, (size_t)gfns);
    fclose(in);
    uint64_t *stamp = malloc((size_t)gfns * sizeof *stamp);
    int rounds = atoi(argv[2]);
    double best = 1e30;
    uint64_t count[7] = {0};
    for (int round = 0; round < rounds; round++) {
        /* ram fault, ram access, mmio slow, mmio fast, mmio refault, cache hit, updates */
        uint64_t ram_fault = 0, ram_access = 0, slow = 0, fast = 0, refault = 0, hit = 0;
        uint64_t updates = 0, gen = 0;
        int64_t cache_gfn[MAX_VCPUS + 1];
        uint64_t cache_gen[MAX_VCPUS + 1];
        memset(stamp, 0, (size_t)gfns * sizeof *stamp);
        for (int v = 0; v <= MAX_VCPUS; v++)
            cache_gfn[v] = -1, cache_gen[v] = 0;
        double start = cpu_seconds();
        for (int64_t i = 0; i < n; i++) {
            unsigned k = kind[i];
            int32_t g = gfn[i];
            if (k == UPDATE) {
                gen += 1;
                updates++;
                if ((gen & MMIO_MASK) == 0) /* the wrap zaps every SPTE */
                    memset(stamp, 0, (size_t)gfns * sizeof *stamp);
                continue;
            }
            if (ram[g]) {
                if (stamp[g] & LIVE) {
                    ram_access++;
                } else {
                    stamp[g] = LIVE;
                    ram_fault++;
                }
                continue;
            }
            if (cache_gfn[k] == g && cache_gen[k] == gen) {
                hit++;
                continue;
            }
            uint64_t want = (gen & MMIO_MASK) | LIVE;
            if (stamp[g] == want) {
                fast++;
            } else {
                if (stamp[g] & LIVE)
                    refault++;
                else
                    slow++;
                stamp[g] = want;
            }
            cache_gfn[k] = g;
            cache_gen[k] = gen;
        }
        double took = cpu_seconds() - start;
        if (took < best)
            best = took;
        uint64_t now[7] = {ram_fault, ram_access, slow, fast, refault, hit, updates};
        memcpy(count, now, sizeof count);
    }
    printf("%.9f %llu %llu %llu %llu %llu %llu %llu\n", best, (unsigned long long)count[0],
           (unsigned long long)count[1], (unsigned long long)count[2],
           (unsigned long long)count[3], (unsigned long long)count[4],
           (unsigned long long)count[5], (unsigned long long)count[6]);
    return 0;
}
