/*
 * Times system calls from inside a process, for the system-call path's benchmark
 * (crates/cli/benches/syscall_path.rs). Built with `gcc -static`, so under mirrord it takes the
 * system-call path.
 *
 * Usage: syscall_bench open N PATH     N times openat(PATH) + close: an intercepted call
 *        syscall_bench read N PATH     N times pread of one byte of PATH: a call no filter names
 *        syscall_bench getppid N PATH  N times getppid: the cheapest call no filter names
 * Prints: ns_per_call: <nanoseconds per iteration>
 *         (read and getppid also) min_ns_per_call: <the fastest of N/CHUNK chunks of CHUNK calls>
 * The minimum over chunks is what the calls cost when nothing else ran in between (timer
 * interrupts, other processes), so that a few nanoseconds added by the filter are not lost in the
 * noise of a shared machine.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
    struct timespec time;
    clock_gettime(CLOCK_MONOTONIC, &time);
    return (double)time.tv_sec * 1e9 + (double)time.tv_nsec;
}

#define CHUNK 10000

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s open|read|getppid N PATH\n", argv[0]);
        return 2;
    }
    long count = atol(argv[2]);
    const char *path = argv[3];
    double started;
    if (strcmp(argv[1], "open") == 0) {
        started = now_ns();
        for (long index = 0; index < count; index++) {
            int fd = openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                perror("openat");
                return 1;
            }
            close(fd);
        }
    } else if (strcmp(argv[1], "read") == 0) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            perror("open");
            return 1;
        }
        char byte;
        double fastest = -1;
        started = now_ns();
        for (long done = 0; done < count; done += CHUNK) {
            double chunk_started = now_ns();
            for (long index = 0; index < CHUNK; index++) {
                if (pread(fd, &byte, 1, 0) < 0) {
                    perror("pread");
                    return 1;
                }
            }
            double chunk = (now_ns() - chunk_started) / CHUNK;
            if (fastest < 0 || chunk < fastest) fastest = chunk;
        }
        close(fd);
        count = (count + CHUNK - 1) / CHUNK * CHUNK;
        printf("min_ns_per_call: %.1f\n", fastest);
    } else if (strcmp(argv[1], "getppid") == 0) {
        double fastest = -1;
        started = now_ns();
        for (long done = 0; done < count; done += CHUNK) {
            double chunk_started = now_ns();
            for (long index = 0; index < CHUNK; index++) {
                getppid();
            }
            double chunk = (now_ns() - chunk_started) / CHUNK;
            if (fastest < 0 || chunk < fastest) fastest = chunk;
        }
        count = (count + CHUNK - 1) / CHUNK * CHUNK;
        printf("min_ns_per_call: %.1f\n", fastest);
    } else {
        fprintf(stderr, "unknown mode %s\n", argv[1]);
        return 2;
    }
    printf("ns_per_call: %.1f\n", (now_ns() - started) / (double)count);
    return 0;
}
