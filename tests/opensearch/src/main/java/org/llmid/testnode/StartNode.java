package org.llmid.testnode;

import java.io.IOException;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.List;
import java.util.concurrent.CountDownLatch;

import org.opensearch.analysis.common.CommonAnalysisPlugin;
import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.index.mapper.MapperExtrasPlugin;
import org.opensearch.index.reindex.ReindexPlugin;
import org.opensearch.ingest.common.IngestCommonPlugin;
import org.opensearch.node.MockNode;
import org.opensearch.node.Node;
import org.opensearch.painless.PainlessPlugin;
import org.opensearch.plugins.Plugin;
import org.opensearch.script.mustache.MustachePlugin;
import org.opensearch.transport.Netty4Plugin;

/**
 * A real single-node OpenSearch 2.19 engine for LLM-ID's tests, bound to 127.0.0.1 only.
 *
 * <p>Usage: {@code StartNode PORT [DATA_DIR]}. Runs in the foreground until killed; prints one line
 * {@code llmid-test-node started http://127.0.0.1:PORT} when the HTTP port answers. The data directory is a fresh
 * temporary one (deleted on exit) unless given.
 */
public final class StartNode {
    private static final List<Class<? extends Plugin>> PLUGINS = List.of(
        Netty4Plugin.class,         // the HTTP (REST) and transport layers
        CommonAnalysisPlugin.class, // analyzers and token filters beyond the standard one
        PainlessPlugin.class,       // scripts (monitor conditions, update scripts)
        IngestCommonPlugin.class,   // ingest processors: grok, dissect, date, lowercase, set, ...
        MapperExtrasPlugin.class,   // scaled_float, rank_feature, search_as_you_type
        ReindexPlugin.class,        // _reindex, _update_by_query, _delete_by_query
        MustachePlugin.class        // search templates
    );

    private StartNode() {}

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: start-node PORT [DATA_DIR]");
            System.exit(2);
        }
        int port = Integer.parseInt(args[0]);
        boolean temporary = args.length < 2;
        Path home = temporary ? Files.createTempDirectory("llmid-opensearch-") : Path.of(args[1]);
        Files.createDirectories(home.resolve("config"));
        Settings settings = Settings.builder()
            .put("cluster.name", "llmid-test")
            .put("node.name", "llmid-test-node")
            .put("path.home", home.toString())
            .put("path.data", home.resolve("data").toString())
            .put("path.logs", home.resolve("logs").toString())
            .put("network.host", "127.0.0.1")
            .put("http.port", port)
            .put("transport.port", "0")
            .put("http.type", "netty4")
            .put("transport.type", "netty4")
            .put("discovery.type", "single-node")
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            .put("action.auto_create_index", true)
            .put("search.max_buckets", 65536)
            .build();
        LogConfigurator.configureWithoutConfig(settings);
        Node node = new MockNode(settings, PLUGINS, home.resolve("config"), true);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
            } catch (IOException e) {
                // exiting anyway
            }
            if (temporary) {
                deleteTree(home);
            }
            stopped.countDown();
        }));
        node.start();
        System.out.println("llmid-test-node started http://127.0.0.1:" + port);
        System.out.flush();
        stopped.await();
    }

    private static void deleteTree(Path root) {
        try {
            Files.walkFileTree(root, new SimpleFileVisitor<>() {
                @Override
                public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
                    Files.deleteIfExists(file);
                    return FileVisitResult.CONTINUE;
                }

                @Override
                public FileVisitResult postVisitDirectory(Path dir, IOException exc) throws IOException {
                    Files.deleteIfExists(dir);
                    return FileVisitResult.CONTINUE;
                }
            });
        } catch (IOException e) {
            // best effort: it is a temporary directory
        }
    }
}
