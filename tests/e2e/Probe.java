// What a JVM process sees: one line per check, in the format the e2e tests parse.
// Run as a single-file program: java Probe.java CHECK...
//
//   file:PATH          file PATH: <first line> | file PATH: ERR <errno name or reason>
//   env:NAME           env NAME: <value> | env NAME: MISSING
//   dns:NAME           dns NAME: <first IPv4 address> | dns NAME: ERR <reason>
//   tcp:HOST:PORT      tcp HOST:PORT: <echoed text> | tcp HOST:PORT: ERR <reason>
//   udp:HOST:PORT      udp HOST:PORT: <echoed text> | udp HOST:PORT: ERR <reason>
//   write:PATH=TEXT    write PATH: ok | write PATH: ERR <errno name or reason>
//   hostname           hostname: <name>
//
// Every network operation gives up after 2 seconds.

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.UnknownHostException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

public class Probe {
    static final int TIMEOUT_MS = 2000;
    static final String ECHO_PAYLOAD = "mirrord-e2e-ping";
    static final ExecutorService LOOKUPS = Executors.newCachedThreadPool(runnable -> {
        Thread thread = new Thread(runnable);
        thread.setDaemon(true);
        return thread;
    });

    static String errorText(Exception error) {
        if (error instanceof NoSuchFileException) return "ERR ENOENT";
        if (error instanceof AccessDeniedException) return "ERR EACCES";
        if (error instanceof SocketTimeoutException) return "ERR timeout";
        if (error instanceof FileSystemException fs && fs.getReason() != null) return "ERR " + fs.getReason();
        if (error instanceof UnknownHostException) return "ERR unknown host";
        return "ERR " + error.getClass().getSimpleName() + ": " + error.getMessage();
    }

    static String firstLine(String path) {
        try (BufferedReader reader = Files.newBufferedReader(Path.of(path), StandardCharsets.UTF_8)) {
            String line = reader.readLine();
            return line == null ? "" : line;
        } catch (IOException error) {
            return errorText(error);
        }
    }

    static String resolve(String name) {
        Future<String> lookup = LOOKUPS.submit(() -> {
            for (InetAddress address : InetAddress.getAllByName(name)) {
                if (address instanceof Inet4Address) return address.getHostAddress();
            }
            return "ERR no IPv4 address";
        });
        try {
            return lookup.get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
        } catch (TimeoutException error) {
            lookup.cancel(true);
            return "ERR timeout";
        } catch (Exception error) {
            Throwable cause = error.getCause() != null ? error.getCause() : error;
            return cause instanceof Exception exception ? errorText(exception) : "ERR " + cause;
        }
    }

    static String tcpEcho(String host, int port) {
        String address = resolve(host);
        if (address.startsWith("ERR")) return address;
        try (Socket socket = new Socket()) {
            socket.connect(new InetSocketAddress(address, port), TIMEOUT_MS);
            socket.setSoTimeout(TIMEOUT_MS);
            OutputStream out = socket.getOutputStream();
            out.write(ECHO_PAYLOAD.getBytes(StandardCharsets.UTF_8));
            out.flush();
            InputStream in = socket.getInputStream();
            byte[] buffer = new byte[ECHO_PAYLOAD.length()];
            int have = 0;
            while (have < buffer.length) {
                int count = in.read(buffer, have, buffer.length - have);
                if (count < 0) break;
                have += count;
            }
            return have == 0 ? "ERR closed" : new String(buffer, 0, have, StandardCharsets.UTF_8);
        } catch (IOException error) {
            return errorText(error);
        }
    }

    static String udpEcho(String host, int port) {
        String address = resolve(host);
        if (address.startsWith("ERR")) return address;
        try (DatagramSocket socket = new DatagramSocket()) {
            socket.setSoTimeout(TIMEOUT_MS);
            byte[] payload = ECHO_PAYLOAD.getBytes(StandardCharsets.UTF_8);
            socket.send(new DatagramPacket(payload, payload.length, new InetSocketAddress(address, port)));
            byte[] buffer = new byte[2048];
            DatagramPacket reply = new DatagramPacket(buffer, buffer.length);
            socket.receive(reply);
            return new String(reply.getData(), 0, reply.getLength(), StandardCharsets.UTF_8);
        } catch (IOException error) {
            return errorText(error);
        }
    }

    static String hostname() {
        try {
            return InetAddress.getLocalHost().getHostName();
        } catch (UnknownHostException error) {
            // getLocalHost calls gethostname(3) and then resolves the name; when only the
            // resolution fails the message is "NAME: NAME: <reason>", which still tells the name.
            String message = String.valueOf(error.getMessage());
            int colon = message.indexOf(':');
            return colon > 0 ? message.substring(0, colon) : "ERR " + message;
        }
    }

    static String check(String spec) {
        int colon = spec.indexOf(':');
        String kind = colon < 0 ? spec : spec.substring(0, colon);
        String argument = colon < 0 ? "" : spec.substring(colon + 1);
        switch (kind) {
            case "file":
                return "file " + argument + ": " + firstLine(argument);
            case "env": {
                String value = System.getenv(argument);
                return "env " + argument + ": " + (value == null ? "MISSING" : value);
            }
            case "dns":
                return "dns " + argument + ": " + resolve(argument);
            case "tcp":
            case "udp": {
                int split = argument.lastIndexOf(':');
                String host = argument.substring(0, split);
                int port = Integer.parseInt(argument.substring(split + 1));
                String outcome = kind.equals("tcp") ? tcpEcho(host, port) : udpEcho(host, port);
                return kind + " " + argument + ": " + outcome;
            }
            case "write": {
                int equals = argument.indexOf('=');
                String path = argument.substring(0, equals);
                try {
                    Files.writeString(Path.of(path), argument.substring(equals + 1));
                    return "write " + path + ": ok";
                } catch (IOException error) {
                    return "write " + path + ": " + errorText(error);
                }
            }
            case "hostname":
                return "hostname: " + hostname();
            default:
                return "unknown check: " + spec;
        }
    }

    public static void main(String[] args) {
        for (String spec : args) {
            System.out.println(check(spec));
            System.out.flush();
        }
        System.exit(0);
    }
}
