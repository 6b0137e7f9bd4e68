/* Times libkmod on the same work as examples/bench_lookup.rs: index load (kmod_new +
 * kmod_load_resources) and kmod_module_new_from_lookup over a corpus, one alias per line.
 * Usage: libkmod_bench MODULE_DIR CORPUS_FILE ROUNDS
 * Prints load_ms, avg_us, worst_us, worst_alias, lookups, found as key=value lines.
 * Declares the few libkmod functions it needs itself (no -dev package needed). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct kmod_ctx;
struct kmod_list;
struct kmod_ctx *kmod_new(const char *dirname, const char *const *config_paths);
int kmod_load_resources(struct kmod_ctx *ctx);
int kmod_module_new_from_lookup(struct kmod_ctx *ctx, const char *alias, struct kmod_list **list);
int kmod_module_unref_list(struct kmod_list *list);
struct kmod_ctx *kmod_unref(struct kmod_ctx *ctx);

static double now_us(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b) {
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv) {
	if (argc != 4) {
		fprintf(stderr, "usage: %s MODULE_DIR CORPUS ROUNDS\n", argv[0]);
		return 2;
	}
	int rounds = atoi(argv[3]);
	FILE *f = fopen(argv[2], "r");
	if (!f) { perror(argv[2]); return 1; }
	size_t cap = 1024, n = 0;
	char **aliases = malloc(cap * sizeof(char *));
	char *line = NULL;
	size_t len = 0;
	ssize_t r;
	while ((r = getline(&line, &len, f)) > 0) {
		if (line[r - 1] == '\n') line[--r] = '\0';
		if (r == 0) continue;
		if (n == cap) aliases = realloc(aliases, (cap *= 2) * sizeof(char *));
		aliases[n++] = strdup(line);
	}
	fclose(f);

	double load_ms = 1e18;
	struct kmod_ctx *ctx = NULL;
	for (int i = 0; i < rounds; i++) {
		double t = now_us();
		struct kmod_ctx *c = kmod_new(argv[1], NULL);
		if (!c || kmod_load_resources(c) < 0) { fprintf(stderr, "kmod_new failed\n"); return 1; }
		double ms = (now_us() - t) / 1e3;
		if (ms < load_ms) load_ms = ms;
		if (ctx) kmod_unref(ctx);
		ctx = c;
	}
	double *times = malloc(sizeof(double) * n * rounds);
	double total = 0;
	long found = 0;
	for (int k = 0; k < rounds; k++) {
		for (size_t i = 0; i < n; i++) {
			struct kmod_list *list = NULL;
			double t = now_us();
			kmod_module_new_from_lookup(ctx, aliases[i], &list);
			double us = now_us() - t;
			if (list) found++;
			kmod_module_unref_list(list);
			times[i * rounds + k] = us;
			total += us;
		}
	}
	double worst = -1;
	size_t worst_i = 0;
	for (size_t i = 0; i < n; i++) {
		qsort(times + i * rounds, rounds, sizeof(double), cmp_double);
		double med = times[i * rounds + rounds / 2];
		if (med > worst) { worst = med; worst_i = i; }
	}
	printf("load_ms=%.3f\navg_us=%.3f\nworst_us=%.3f\nworst_alias=%s\nlookups=%zu\nfound=%ld\n",
	       load_ms, total / (n * (double)rounds), worst, aliases[worst_i], n, found / rounds);
	kmod_unref(ctx);
	return 0;
}
