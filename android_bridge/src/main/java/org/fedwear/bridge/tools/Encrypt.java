package org.fedwear.bridge.tools;

import java.io.File;
import java.io.FileOutputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.Arrays;
import java.util.HashSet;
import org.fedwear.bridge.client.FedWearClient;
import org.fedwear.bridge.crypto.CryptoParams;
import org.fedwear.bridge.crypto.PublicKey;
import org.fedwear.bridge.crypto.Quantised;
import org.fedwear.bridge.crypto.Randomiser;
import org.fedwear.bridge.crypto.RandomiserPool;
import org.fedwear.bridge.crypto.UpdateEncoder;
import org.json.JSONArray;
import org.json.JSONObject;

/**
 * Encrypts an update file (little-endian float32) under a plan's crypto object, writes the payload,
 * and prints the time of each encryption as JSON: for cross-language checks and the benchmark.
 *
 * <pre>
 * java ... org.fedwear.bridge.tools.Encrypt --crypto crypto.json --update delta.f32 --weight W --round R \
 *     --out payload.bin [--repeat K] [--pool FILE]
 * </pre>
 * The randomiser is the crypto object's; the short-exponent table is built once and timed apart.
 * With {@code --pool}, the crypto object's randomiser first fills a randomiser pool with as many
 * randomisers as the encryptions need (untimed, as a device does while charging) and the timed
 * encryptions draw from the pool.
 */
public final class Encrypt {
    private Encrypt() {
    }

    public static void main(String[] argv) throws Exception {
        Arguments args = new Arguments(argv, new HashSet<>(Arrays.asList("--crypto", "--update", "--weight", "--round",
                "--out", "--repeat", "--pool")), new HashSet<>());
        JSONObject crypto = new JSONObject(new String(Files.readAllBytes(new File(args.required("--crypto")).toPath()),
                StandardCharsets.UTF_8));
        CryptoParams params = CryptoParams.fromJson(crypto);
        PublicKey key = PublicKey.fromJson(crypto.getString("public_key"));
        float[] update = FedWearClient.readFloats(new File(args.required("--update")));
        int weight = Integer.parseInt(args.required("--weight"));
        long round = Long.parseLong(args.required("--round"));
        int repeat = Integer.parseInt(args.optional("--repeat", "1"));
        long start = System.nanoTime();
        Randomiser randomiser = Randomiser.forMode(params.randomiser, key);
        String poolFile = args.optional("--pool", null);
        if (poolFile != null) {
            RandomiserPool pool = new RandomiserPool(new File(poolFile), key);
            pool.fill(repeat * params.plaintextsFor(update.length), randomiser);
            randomiser = pool;
        }
        double setupS = (System.nanoTime() - start) / 1e9;
        UpdateEncoder encoder = new UpdateEncoder(params, key, randomiser, Quantised.randomUniforms());
        JSONArray times = new JSONArray();
        byte[] payload = null;
        for (int i = 0; i < repeat; i++) {
            start = System.nanoTime();
            payload = encoder.encode(update, weight, round).payload;
            times.put((System.nanoTime() - start) / 1e9);
        }
        try (OutputStream out = new FileOutputStream(args.required("--out"))) {
            out.write(payload);
        }
        System.out.println(new JSONObject().put("encrypt_s", times).put("randomiser_setup_s", setupS)
                .put("values", update.length).put("bytes", payload.length));
    }
}
