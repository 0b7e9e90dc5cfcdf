package org.fedwear.bridge.tools;

import java.io.File;
import java.util.Arrays;
import java.util.HashSet;
import org.fedwear.bridge.client.FedWearClient;
import org.fedwear.bridge.client.FileDeviceKey;
import org.fedwear.bridge.client.LocalUpdate;
import org.fedwear.bridge.client.RoundOutcome;
import org.fedwear.bridge.client.ServerException;

/**
 * Takes part in the current round with an update computed elsewhere (a file of little-endian
 * float32 deltas of the shared weights), through the same client an app uses; prints the outcome
 * as one JSON line.
 *
 * <pre>
 * java -cp fedwear-bridge.jar:json.jar org.fedwear.bridge.tools.Participate --server URL --token TOKEN \
 *     --storage DIR --update delta.f32 --windows N --model-version V [--accuracy A] [--device-key] \
 *     [--fill-pool N] [--exit-after-store]
 * </pre>
 *
 * {@code --fill-pool N} first computes N randomisers into the device's pool (as an app does while
 * charging); the upload then draws its randomisers from the pool when it holds enough.
 *
 * Exit status: 0 uploaded or already uploaded, 3 skipped, not selected or refused, 2 bad arguments, 1 failure.
 * {@code --exit-after-store} halts the process right after the payload is stored (status 75), as a
 * crash would; running again without it sends the stored payload.
 */
public final class Participate {
    private Participate() {
    }

    public static void main(String[] argv) throws Exception {
        Arguments args;
        int version;
        int windows;
        try {
            args = new Arguments(argv, new HashSet<>(Arrays.asList("--server", "--token", "--storage", "--update",
                    "--windows", "--model-version", "--accuracy", "--name", "--fill-pool")),
                    new HashSet<>(Arrays.asList("--device-key", "--exit-after-store")));
            for (String name : new String[] {"--server", "--token", "--storage", "--update"}) {
                args.required(name);
            }
            version = Integer.parseInt(args.required("--model-version"));
            windows = Integer.parseInt(args.required("--windows"));
        } catch (IllegalArgumentException e) {
            System.err.println("error: " + e.getMessage());
            System.exit(2);
            return;
        }
        File storage = new File(args.required("--storage"));
        FedWearClient.Builder builder = new FedWearClient.Builder(args.required("--server"), args.required("--token"),
                storage).name(args.optional("--name", ""));
        if (args.flag("--device-key")) {
            builder.deviceKey(FileDeviceKey.loadOrCreate(new File(storage, "device-key.json")));
        }
        String accuracy = args.optional("--accuracy", null);
        File update = new File(args.required("--update"));
        Runnable crash = args.flag("--exit-after-store") ? () -> Runtime.getRuntime().halt(75) : null;
        RoundOutcome outcome;
        int fill = Integer.parseInt(args.optional("--fill-pool", "0"));
        try (FedWearClient client = builder.build()) {
            if (fill > 0) {
                client.fillRandomiserPool(fill);
            }
            outcome = client.participate(plan -> {
                if (plan.modelVersion != version) {
                    throw new IllegalStateException("the update was computed on model v" + version
                            + " but the round trains v" + plan.modelVersion);
                }
                return new LocalUpdate(FedWearClient.readFloats(update), windows,
                        accuracy == null ? null : Double.valueOf(accuracy));
            }, crash);
        } catch (ServerException e) {
            System.err.println("refused: " + e.getMessage());
            System.exit(3);
            return;
        }
        System.out.println(outcome.toJson());
        boolean sent = "uploaded".equals(outcome.status) || "already_uploaded".equals(outcome.status);
        System.exit(sent ? 0 : 3);
    }
}
