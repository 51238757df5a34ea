/*
 * Embedded single-node OpenSearch for the local dev stack.
 *
 * The Maven artifacts contain no server main (the distribution's bootstrap
 * lives in its tarball), so this class starts a Node directly. Modules that
 * the distribution would load from its modules/ folder (HTTP transport,
 * analyzers, painless, ...) are handed to the node as classpath plugins.
 *
 * Usage: java -cp 'jars/*:classes' Launcher key=value [key=value ...]
 * Every argument is an OpenSearch setting; path.home is required.
 * Started and stopped by scripts/stack.d/opensearch.sh: SIGTERM closes the
 * node cleanly through the shutdown hook.
 */

import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;

public final class Launcher {

    /** Plugin classes loaded when their jar is on the classpath; the first one is required. */
    private static final String[] PLUGINS = {
        "org.opensearch.transport.Netty4Plugin", // HTTP and transport layers
        "org.opensearch.analysis.common.CommonAnalysisPlugin",
        "org.opensearch.painless.PainlessPlugin",
        "org.opensearch.index.mapper.MapperExtrasPlugin",
        "org.opensearch.index.reindex.ReindexPlugin",
    };

    /** Node exposes the constructor that takes classpath plugins only to subclasses. */
    private static final class EmbeddedNode extends Node {
        EmbeddedNode(Environment environment, Collection<Class<? extends Plugin>> plugins) {
            super(environment, plugins, true);
        }
    }

    public static void main(String[] args) throws Exception {
        Settings.Builder builder = Settings.builder();
        for (String arg : args) {
            int eq = arg.indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("expected key=value, got: " + arg);
            }
            builder.put(arg.substring(0, eq), arg.substring(eq + 1));
        }
        Settings settings = builder.build();
        if (settings.get("path.home") == null) {
            throw new IllegalArgumentException("path.home=<dir> is required");
        }

        // Reads <path.home>/config/opensearch.yml when present and fills in defaults.
        Environment environment = InternalSettingsPreparer.prepareEnvironment(
            settings, Collections.emptyMap(), null, () -> "orderflow-dev-node");
        // PluginsService scans these folders; they stay empty.
        Files.createDirectories(environment.modulesFile());
        Files.createDirectories(environment.pluginsFile());

        List<Class<? extends Plugin>> plugins = new ArrayList<>();
        for (String name : PLUGINS) {
            try {
                plugins.add(Class.forName(name).asSubclass(Plugin.class));
            } catch (ClassNotFoundException e) {
                if (plugins.isEmpty()) {
                    throw new IllegalStateException("required plugin missing from classpath: " + name, e);
                }
                System.err.println("[launcher] optional plugin not on classpath, skipped: " + name);
            }
        }

        Node node = new EmbeddedNode(environment, plugins);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                if (!node.awaitClose(20, TimeUnit.SECONDS)) {
                    System.err.println("[launcher] node did not close within 20 s");
                }
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                stopped.countDown();
            }
        }, "launcher-shutdown"));

        try {
            node.start();
        } catch (Throwable t) {
            t.printStackTrace();
            // halt, not exit: the shutdown hook would wait on a half-started node.
            Runtime.getRuntime().halt(1);
        }
        System.err.println("[launcher] node started with plugins " + plugins);
        // OpenSearch's threads are daemons; the main thread keeps the JVM alive.
        stopped.await();
    }
}
