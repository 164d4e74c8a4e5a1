/*
 * Two opens of one FIFO that wait for each other, from two threads of one program: the reader's
 * open returns only once the writer's has been made. Under mirrord's system-call path with
 * `fs.mapping` sending PATH to a FIFO on this machine, the supervisor makes both opens itself,
 * so it must keep serving the writer's call while the reader's waits.
 *
 * Build: gcc -static -pthread -o fifo_pair fifo_pair.c
 * Usage: fifo_pair PATH
 * Prints: fifo PATH: <what the reader read> | fifo PATH: ERR <errno name>
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *path;
static char received[64];
static int reader_errno;

static void *reader(void *unused) {
    (void)unused;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        reader_errno = errno;
        return NULL;
    }
    ssize_t count = read(fd, received, sizeof received - 1);
    if (count < 0) reader_errno = errno;
    close(fd);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH\n", argv[0]);
        return 2;
    }
    path = argv[1];
    pthread_t thread;
    if (pthread_create(&thread, NULL, reader, NULL) != 0) return 1;
    /* Let the reader's open start waiting first. */
    usleep(200 * 1000);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        printf("fifo %s: ERR %s\n", path, strerrorname_np(errno));
        return 0;
    }
    const char *message = "through the fifo";
    if (write(fd, message, strlen(message)) < 0) return 1;
    close(fd);
    pthread_join(thread, NULL);
    if (reader_errno != 0)
        printf("fifo %s: ERR %s\n", path, strerrorname_np(reader_errno));
    else
        printf("fifo %s: %s\n", path, received);
    return 0;
}
