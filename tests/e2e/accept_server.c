/*
 * A blocking TCP server in plain C (the e2e tests link it statically): it prints what accept and
 * getpeername say about each client.
 *
 * Build: cc -O1 -o accept_server accept_server.c
 * Usage: accept_server IPV4 PORT
 *
 *   serving                    once it listens
 *   pid PID                    its process id (for signals)
 *   accept from IP:PORT        for connections 1, 3, 5…: blocking accept(2), the address it wrote
 *   accept4 from IP:PORT       for connections 2, 4, 6…: blocking accept4(2, SOCK_CLOEXEC)
 *   getpeername IP:PORT        then getpeername(2) on the accepted socket
 *   accept: ERR <errno name>   when accept fails (SIGUSR1 has a handler without SA_RESTART, so it
 *                              interrupts a blocked accept with EINTR)
 *
 * Every connection is read from once, then gets "c server\n" and is closed. It runs until killed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *errno_name(int error) {
    const char *name = strerrorname_np(error);
    return name ? name : "EUNKNOWN";
}

static void on_signal(int signal) { (void)signal; }

static void format_address(const struct sockaddr_in *address, char *text, size_t size) {
    char ip[INET_ADDRSTRLEN] = "?";
    inet_ntop(AF_INET, &address->sin_addr, ip, sizeof ip);
    snprintf(text, size, "%s:%u", ip, ntohs(address->sin_port));
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s IPV4 PORT\n", argv[0]);
        return 2;
    }
    struct sigaction action = {.sa_handler = on_signal};
    sigemptyset(&action.sa_mask);
    sigaction(SIGUSR1, &action, NULL);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &address.sin_addr) != 1) {
        fprintf(stderr, "not an IPv4 address: %s\n", argv[1]);
        return 2;
    }
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    int yes = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    if (bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 16) != 0) {
        printf("listen: ERR %s\n", errno_name(errno));
        return 1;
    }
    printf("serving\npid %d\n", (int)getpid());
    fflush(stdout);
    for (unsigned connections = 0;;) {
        struct sockaddr_in peer;
        memset(&peer, 0, sizeof peer);
        socklen_t length = sizeof peer;
        int use_accept4 = connections % 2 == 1;
        int connection = use_accept4 ? accept4(listener, (struct sockaddr *)&peer, &length, SOCK_CLOEXEC)
                                     : accept(listener, (struct sockaddr *)&peer, &length);
        if (connection < 0) {
            printf("accept: ERR %s\n", errno_name(errno));
            fflush(stdout);
            continue;
        }
        connections++;
        char text[64];
        format_address(&peer, text, sizeof text);
        printf("%s from %s\n", use_accept4 ? "accept4" : "accept", text);
        memset(&peer, 0, sizeof peer);
        length = sizeof peer;
        if (getpeername(connection, (struct sockaddr *)&peer, &length) != 0) {
            printf("getpeername: ERR %s\n", errno_name(errno));
        } else {
            format_address(&peer, text, sizeof text);
            printf("getpeername %s\n", text);
        }
        fflush(stdout);
        char request[4096];
        ssize_t received = read(connection, request, sizeof request);
        (void)received;
        static const char answer[] = "c server\n";
        ssize_t written = write(connection, answer, sizeof answer - 1);
        (void)written;
        close(connection);
    }
}
