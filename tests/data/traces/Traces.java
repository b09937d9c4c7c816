// Real JVM stack traces between ordinary log lines, for logferry's multiline "java" preset.
// Run: java Traces.java > java.log   (single-file source launch, JDK 11+). Everything goes to stdout
// (System.err is pointed there) so the order of lines is the order they were printed in.
import java.io.Closeable;
import java.io.IOException;
import java.io.UncheckedIOException;

public class Traces {
    private static int seq;

    static void log(String level, String message) {
        seq++;
        System.out.printf("2024-05-01 12:00:%02d.%03d %-5s [%s] Traces - %s%n", seq / 10, seq % 10 * 100, level,
                Thread.currentThread().getName(), message);
    }

    static class NoMessageException extends Exception {}  // custom, printed as its bare class name

    static class Fatal extends RuntimeException {  // a custom name that does not end in Exception/Error
        Fatal(String message, Throwable cause) { super(message, cause); }
    }

    static class Resource implements Closeable {
        @Override public void close() throws IOException {
            throw new IOException("close failed", new IllegalStateException("socket already closed"));
        }
    }

    static int parsePort(String text) { return Integer.parseInt(text); }

    static void readConfig(String port) throws IOException {
        try {
            parsePort(port);
        } catch (NumberFormatException e) {
            throw new IOException("config: bad port", e);
        }
    }

    static void loadConfig() {
        try {
            readConfig("eighty");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static void start() {
        try {
            loadConfig();
        } catch (RuntimeException e) {
            throw new IllegalStateException("cannot start", e);
        }
    }

    static void useResource() throws Exception {
        try (Resource r = new Resource()) {
            throw new IllegalArgumentException("request rejected");
        }
    }

    static void quiet() throws NoMessageException { throw new NoMessageException(); }

    public static void main(String[] args) throws Exception {
        System.setErr(System.out);
        log("INFO", "starting, version 1.2.3");
        try {
            parsePort("-");
        } catch (NumberFormatException e) {
            e.printStackTrace();  // a single exception: its line and frames
        }
        log("INFO", "listening on port 8080");
        log("WARN", "upstream said Error: timeout, retrying");  // an ordinary line the start rule matches
        try {
            start();
        } catch (IllegalStateException e) {
            e.printStackTrace();  // three causes deep, with "... N more"
        }
        log("INFO", "request 1 done");
        try {
            useResource();
        } catch (Exception e) {
            e.printStackTrace();  // "Suppressed:" with its own "Caused by:"
        }
        try {
            quiet();
        } catch (NoMessageException e) {
            e.printStackTrace();  // no message: the line ends with the class name
        }
        log("INFO", "request 2 done");
        Exception a = new Exception("ping");
        Exception b = new Exception("pong", a);
        a.initCause(b);
        b.printStackTrace();  // "Caused by: [CIRCULAR REFERENCE: ...]"
        Thread worker = new Thread(() -> {
            log("INFO", "worker started");
            throw new ArithmeticException("/ by zero");
        }, "worker-1");
        worker.start();
        worker.join();  // its uncaught exception: Exception in thread "worker-1" ...
        log("ERROR", "giving up");
        throw new Fatal("shutting down", new NoMessageException());  // Exception in thread "main" ...
    }
}
