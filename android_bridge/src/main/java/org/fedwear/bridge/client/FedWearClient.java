package org.fedwear.bridge.client;

import java.io.Closeable;
import java.io.File;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.Arrays;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.LongSupplier;
import org.fedwear.bridge.crypto.Bytes;
import org.fedwear.bridge.crypto.EncryptedUpdate;
import org.fedwear.bridge.crypto.PublicKey;
import org.fedwear.bridge.crypto.Quantised;
import org.fedwear.bridge.crypto.Randomiser;
import org.fedwear.bridge.crypto.RandomiserPool;
import org.fedwear.bridge.crypto.StandardRandomiser;
import org.fedwear.bridge.crypto.UpdateEncoder;
import org.fedwear.bridge.io.Storage;
import org.fedwear.bridge.model.BundleException;
import org.fedwear.bridge.model.Manifest;
import org.fedwear.bridge.model.Trainer;
import org.fedwear.bridge.model.Training;
import org.json.JSONException;
import org.json.JSONObject;

/**
 * One device's view of a FedWear job: enrol, sync, train, encrypt, upload, personalise, predict.
 *
 * <p>Everything the device must remember lives in its storage folder (the app's private storage),
 * so it resumes after a crash or restart: credentials (owner-only), the bundle and its ETags, the
 * published weights it has, its personal layers, the randomiser pool, and per round the encrypted
 * payload and the server's answer. A payload is stored before it is sent and sent again unchanged
 * after a crash (the server answers a repeat with its first answer), so a device never contributes
 * twice to a round. Not thread-safe: call it from one worker thread.
 */
public final class FedWearClient implements Closeable {
    /** Settings of a client; only the server, the enrolment token and the storage folder are required. */
    public static final class Builder {
        private final String serverUrl;
        private final String enrolmentToken;
        private final File storage;
        private HttpTransport transport;
        private DeviceConditions conditions = new DeviceConditions();
        private TrainerFactory trainerFactory;
        private DeviceKey deviceKey;
        private String name = "";
        private LongSupplier clockMillis = System::currentTimeMillis;

        public Builder(String serverUrl, String enrolmentToken, File storage) {
            this.serverUrl = serverUrl;
            this.enrolmentToken = enrolmentToken;
            this.storage = storage;
        }

        public Builder transport(HttpTransport value) {
            transport = value;
            return this;
        }

        public Builder conditions(DeviceConditions value) {
            conditions = value;
            return this;
        }

        /** How to open the bundle's model: needed for training, personalisation and prediction. */
        public Builder trainer(TrainerFactory value) {
            trainerFactory = value;
            return this;
        }

        /** Sends the key's public half at enrolment and signs every upload (X-FedWear-Signature). */
        public Builder deviceKey(DeviceKey value) {
            deviceKey = value;
            return this;
        }

        public Builder name(String value) {
            name = value;
            return this;
        }

        /** Wall clock in milliseconds since the epoch, for the round deadline. */
        public Builder clock(LongSupplier value) {
            clockMillis = value;
            return this;
        }

        public FedWearClient build() throws IOException {
            return new FedWearClient(this);
        }
    }

    private static final String NO_TRAINER = "no trainer: build the client with trainer(TfLiteTrainer::new)";

    private final File storage;
    private final HttpTransport transport;
    private final DeviceConditions conditions;
    private final TrainerFactory trainerFactory;
    private final DeviceKey deviceKey;
    private final String enrolmentToken;
    private final String name;
    private final LongSupplier clockMillis;
    private final Map<String, UpdateEncoder> encoders = new HashMap<>();
    private JSONObject credentials;
    private Plan plan;
    private Manifest manifest;
    private Trainer trainer;
    private long bytesDown;

    private FedWearClient(Builder b) throws IOException {
        storage = b.storage;
        if (!storage.isDirectory() && !storage.mkdirs()) {
            throw new IOException("cannot create the storage folder " + storage);
        }
        transport = b.transport != null ? b.transport : new HttpTransport(b.serverUrl);
        conditions = b.conditions;
        trainerFactory = b.trainerFactory;
        deviceKey = b.deviceKey;
        enrolmentToken = b.enrolmentToken;
        name = b.name;
        clockMillis = b.clockMillis;
    }

    // Enrolment and sync ---------------------------------------------------------------------

    /** Enrols once; later calls and restarts reuse the stored credentials. Returns the device id. */
    public String enrol() throws IOException, ServerException {
        File file = new File(storage, "credentials.json");
        try {
            if (credentials == null && file.exists()) {
                credentials = new JSONObject(read(file));
            }
            if (credentials == null) {
                JSONObject body = new JSONObject().put("token", enrolmentToken).put("name", name);
                if (deviceKey != null) {
                    body.put("device_key", Base64.getEncoder().encodeToString(deviceKey.publicKeyDer()));
                }
                JSONObject answer = transport.requestJson("POST", "/v1/enrol", body, new HashMap<>()).json();
                Storage.writeAtomically(file, answer.toString().getBytes(StandardCharsets.UTF_8), true);
                credentials = answer;
            }
            return credentials.getString("device_id");
        } catch (JSONException e) {
            throw new IOException("enrolment answer or " + file + " is not valid: " + e.getMessage(), e);
        }
    }

    private Map<String, String> auth() throws IOException, ServerException {
        enrol();
        Map<String, String> headers = new HashMap<>();
        headers.put("Authorization", credentials.optString("authorization"));
        return headers;
    }

    private Response get(String path, Map<String, String> extra) throws IOException, ServerException {
        Map<String, String> headers = auth();
        headers.putAll(extra);
        Response response = transport.request("GET", path, null, null, headers);
        bytesDown += response.body.length;
        return response;
    }

    private void download(String path, File target) throws IOException, ServerException {
        File etagFile = new File(target.getParentFile(), "." + target.getName() + ".etag");
        Map<String, String> headers = new HashMap<>();
        if (target.exists() && etagFile.exists()) {
            headers.put("If-None-Match", read(etagFile));
        }
        Response response = get(path, headers);
        if (response.status == 304) {
            return;
        }
        Storage.writeAtomically(target, response.body, false);
        String etag = response.header("ETag");
        if (etag != null) {
            Storage.writeAtomically(etagFile, etag.getBytes(StandardCharsets.UTF_8), false);
        }
    }

    /** Fetches the plan, and the bundle and global weights when they changed; loads them into the trainer. */
    public Plan sync() throws IOException, ServerException {
        Plan fresh;
        try {
            fresh = Plan.fromJson(get("/v1/plan", new HashMap<>()).json());
        } catch (JSONException e) {
            throw new IOException("plan is not JSON: " + e.getMessage(), e);
        }
        File bundle = new File(storage, "bundle");
        File manifestFile = new File(bundle, Manifest.MANIFEST_FILE);
        File modelFile = new File(bundle, Manifest.MODEL_FILE);
        if (!manifestFile.exists() || !Manifest.fromJson(read(manifestFile)).modelSha256.equals(fresh.bundleSha256)) {
            download("/v1/bundle/" + Manifest.MODEL_FILE, modelFile);
            download("/v1/bundle/" + Manifest.MANIFEST_FILE, manifestFile);
            closeTrainer();
        }
        if (manifest == null || trainer == null) {
            manifest = checkedManifest(manifestFile, modelFile, fresh);
        }
        File weights = new File(storage, "weights/v" + fresh.modelVersion + ".f32");
        if (!weights.exists()) {
            download("/v1/weights/" + fresh.modelVersion, weights);
        }
        float[] shared = readFloats(weights);
        if (shared.length != fresh.sharedValues) {
            Files.deleteIfExists(weights.toPath());  // fetched again next time
            throw new BundleException("weights v" + fresh.modelVersion + " hold " + shared.length
                    + " values, the plan says " + fresh.sharedValues);
        }
        if (trainerFactory != null) {
            boolean opened = trainer == null;
            if (opened) {
                trainer = trainerFactory.open(modelFile, manifest);
            }
            trainer.setWeights(Trainer.Part.SHARED, shared);
            if (opened) {
                // Personal layers of another model shape (a new bundle) start again from the shared ones.
                File personal = personalFile();
                float[] kept = personal.exists() ? readFloats(personal) : new float[0];
                if (kept.length == manifest.personal.size()) {
                    trainer.setWeights(Trainer.Part.PERSONAL, kept);
                } else {
                    Training.resetPersonal(trainer);
                }
            }
        }
        plan = fresh;
        return fresh;
    }

    private static Manifest checkedManifest(File manifestFile, File modelFile, Plan plan) throws IOException {
        Manifest parsed = Manifest.fromJson(read(manifestFile));
        String actual = Bytes.hex(Bytes.sha256(Files.readAllBytes(modelFile.toPath())));
        if (!actual.equals(parsed.modelSha256) || !actual.equals(plan.bundleSha256)) {
            throw new BundleException(modelFile + ": sha256 " + actual + " does not match the manifest's "
                    + parsed.modelSha256 + " and the plan's " + plan.bundleSha256);
        }
        if (parsed.shared.size() != plan.sharedValues) {
            throw new BundleException("the bundle has " + parsed.shared.size() + " shared weights, the plan says "
                    + plan.sharedValues);
        }
        return parsed;
    }

    // One round ------------------------------------------------------------------------------

    /** Trains the shared layers on local windows and uploads the encrypted update for the current round. */
    public RoundOutcome participate(float[][][] windows, int[] labels, long seed) throws IOException, ServerException {
        if (trainerFactory == null) {
            throw new IllegalStateException(NO_TRAINER);
        }
        return participate(p -> {
            Trainer t = trainer;
            Double accuracy = labels.length > 0 ? Training.accuracy(t, windows, labels, Trainer.Head.GLOBAL) : null;
            float[] delta = Training.localUpdate(t, windows, labels, p.hyperparameters, new Random(seed));
            return new LocalUpdate(delta, labels.length, accuracy);
        }, null);
    }

    /**
     * Uploads the update {@code source} computes for the current round (it is called only when no
     * payload is stored for that round). {@code beforeUpload} runs after the payload is stored.
     */
    public RoundOutcome participate(UpdateSource source, Runnable beforeUpload) throws IOException, ServerException {
        long downBefore = bytesDown;
        Plan current = sync();
        Plan.Round round = current.round;
        RoundOutcome outcome = new RoundOutcome(round == null ? null : round.id, 0);
        if (!current.hasOpenRound()) {
            outcome.reason = "no open round";
            return outcome;
        }
        if (!current.selected) {
            outcome.status = "not_selected";
            outcome.reason = "not selected for round " + round.id + ": check in again in " + current.retryAfter + " s";
            return outcome;
        }
        File payloadFile = new File(storage, "rounds/" + round.id + ".bin");
        File answerFile = new File(storage, "rounds/" + round.id + ".json");
        if (answerFile.exists()) {
            outcome.status = "already_uploaded";
            outcome.answer = parse(read(answerFile));
            return outcome;
        }
        if (!payloadFile.exists()) {
            String blocked = conditions.blockedBy();
            if (blocked != null) {
                outcome.reason = blocked;
                return outcome;
            }
            if (clockMillis.getAsLong() >= round.deadline.toEpochMilli()) {
                outcome.reason = "deadline passed";
                return outcome;
            }
            long start = System.nanoTime();
            LocalUpdate update = source.compute(current);
            outcome.trainS = (System.nanoTime() - start) / 1e9;
            outcome.windows = update.windows;
            if (update.delta.length != current.sharedValues) {
                throw new IllegalArgumentException("update has " + update.delta.length + " values, the model has "
                        + current.sharedValues);
            }
            start = System.nanoTime();
            UpdateEncoder encoder = encoder(current);
            float[] values = uploadVector(update.delta, current.transitionValues());
            EncryptedUpdate encoded = encoder.encode(values, current.params.weightOf(update.windows), round.id);
            outcome.cryptoS = (System.nanoTime() - start) / 1e9;
            outcome.clippedFraction = encoded.clippedFraction;
            Storage.writeAtomically(payloadFile, encoded.payload, true);
            report(round.id, update.windows, update.accuracy);
        }
        if (beforeUpload != null) {
            beforeUpload.run();
        }
        byte[] payload = Files.readAllBytes(payloadFile.toPath());
        Map<String, String> headers = auth();
        if (deviceKey != null) {
            headers.put("X-FedWear-Signature",
                    Base64.getEncoder().encodeToString(deviceKey.sign(DeviceKey.uploadMessage(round.id, payload))));
        }
        try {
            Response response = transport.request("PUT", "/v1/rounds/" + round.id + "/update", payload,
                    "application/octet-stream", headers);
            outcome.answer = parse(new String(response.body, StandardCharsets.UTF_8));
        } catch (ServerException refused) {
            boolean late = "deadline_passed".equals(refused.code) || "round_closed".equals(refused.code);
            outcome.status = late ? "late_refused" : "refused";
            outcome.reason = refused.code + ": " + refused.detail;
            Storage.writeAtomically(answerFile, ("{\"refused\": " + JSONObject.quote(refused.code) + "}")
                    .getBytes(StandardCharsets.UTF_8), false);
            return outcome;
        }
        Storage.writeAtomically(answerFile, outcome.answer.toString().getBytes(StandardCharsets.UTF_8), false);
        outcome.status = "uploaded";
        outcome.bytesUp = payload.length;
        outcome.bytesDown = bytesDown - downBefore;
        return outcome;
    }

    /**
     * The values an upload encrypts: the shared delta, then {@code transitionValues} zeros when the job
     * aggregates transition counts (this client has no recording ids, so it counts no transitions).
     */
    static float[] uploadVector(float[] delta, int transitionValues) {
        return transitionValues == 0 ? delta : Arrays.copyOf(delta, delta.length + transitionValues);
    }

    private UpdateEncoder encoder(Plan p) throws IOException {
        if (poolFile(p.publicKey).exists()) {
            RandomiserPool pool = new RandomiserPool(poolFile(p.publicKey), p.publicKey);
            if (pool.size() >= p.params.plaintextsFor(p.uploadValues())) {
                return new UpdateEncoder(p.params, p.publicKey, pool, Quantised.randomUniforms());
            }
        }
        String key = Bytes.hex(p.publicKey.fingerprint()) + Bytes.hex(p.params.fingerprint()) + p.params.randomiser;
        UpdateEncoder cached = encoders.get(key);
        if (cached == null) {
            cached = new UpdateEncoder(p.params, p.publicKey, Randomiser.forMode(p.params.randomiser, p.publicKey),
                    Quantised.randomUniforms());
            encoders.put(key, cached);
        }
        return cached;
    }

    private File poolFile(PublicKey key) {
        return new File(storage, "randomisers-" + Bytes.hex(key.fingerprint()).substring(0, 16) + ".pool");
    }

    /**
     * Computes {@code count} standard randomisers for the job's key into the pool (call it while the
     * device charges); uploads then take their randomisers from the pool while it holds enough.
     * Returns the pool's size.
     */
    public int fillRandomiserPool(int count) throws IOException, ServerException {
        PublicKey key = (plan != null ? plan : sync()).publicKey;
        RandomiserPool pool = new RandomiserPool(poolFile(key), key);
        pool.fill(count, new StandardRandomiser(key));
        return pool.size();
    }

    private void report(long roundId, int windows, Double accuracy) {
        try {
            JSONObject body = new JSONObject().put("windows", windows)
                    .put("accuracy", accuracy == null || accuracy.isNaN() ? JSONObject.NULL : accuracy);
            transport.requestJson("POST", "/v1/rounds/" + roundId + "/report", body, auth());
        } catch (IOException | ServerException | JSONException e) {
            // Metrics are best effort: training goes on.
        }
    }

    // Personalisation and inference -----------------------------------------------------------

    /**
     * Fine-tunes the personal layers on the frozen global features and stores them on the device
     * (never uploaded); {@code epochs} <= 0 takes the plan's personal_epochs. Returns the loss per epoch.
     */
    public List<Double> personalise(float[][][] windows, int[] labels, int epochs, boolean fresh, long seed)
            throws IOException, ServerException {
        Trainer t = requireTrainer();
        if (fresh || !personalFile().exists()) {
            Training.resetPersonal(t);
        }
        List<Double> losses = Training.fit(t, Trainer.Part.PERSONAL, windows, labels,
                epochs > 0 ? epochs : plan.hyperparameters.personalEpochs, plan.hyperparameters.batchSize,
                plan.hyperparameters.lr, plan.hyperparameters.momentum, 0f, new Random(seed));
        Storage.writeAtomically(personalFile(), floatBytes(t.getWeights(Trainer.Part.PERSONAL)), true);
        return losses;
    }

    /** Predicted activity indices (the manifest's label_names) from the personal or the global head. */
    public int[] predict(float[][][] windows, Trainer.Head head) throws IOException, ServerException {
        return Training.predict(requireTrainer(), windows, head);
    }

    /** Class probabilities of the personal or the global head (feed them to a decoding ForwardFilter). */
    public float[][] predictProba(float[][][] windows, Trainer.Head head) throws IOException, ServerException {
        return requireTrainer().predictProba(windows, head);
    }

    /**
     * The federation's transition counts from the last plan ((classes + 1) x classes, for
     * {@code TransitionModel.fromCounts}), or null before a sync, for a job without transitions, or
     * before a round published them.
     */
    public double[][] transitionCounts() {
        return plan == null ? null : plan.transitionCounts();
    }

    /** The manifest of the bundle in use (after a sync). */
    public Manifest manifest() {
        return manifest;
    }

    private Trainer requireTrainer() throws IOException, ServerException {
        if (trainerFactory == null) {
            throw new IllegalStateException(NO_TRAINER);
        }
        if (trainer == null) {
            sync();
        }
        return trainer;
    }

    private File personalFile() {
        return new File(storage, "personal.f32");
    }

    private void closeTrainer() {
        if (trainer != null) {
            trainer.close();
            trainer = null;
        }
    }

    @Override
    public void close() {
        closeTrainer();
    }

    // Files ----------------------------------------------------------------------------------

    private static String read(File file) throws IOException {
        return new String(Files.readAllBytes(file.toPath()), StandardCharsets.UTF_8);
    }

    private static JSONObject parse(String text) throws IOException {
        try {
            return new JSONObject(text);
        } catch (JSONException e) {
            throw new IOException("not a JSON object: " + e.getMessage(), e);
        }
    }

    /** Little-endian float32 values of a file (the weights body of the protocol). */
    public static float[] readFloats(File file) throws IOException {
        byte[] raw = Files.readAllBytes(file.toPath());
        if (raw.length % 4 != 0) {
            throw new IOException(file + " is not a float32 vector (" + raw.length + " bytes)");
        }
        float[] out = new float[raw.length / 4];
        ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(out);
        return out;
    }

    static byte[] floatBytes(float[] values) {
        ByteBuffer out = ByteBuffer.allocate(4 * values.length).order(ByteOrder.LITTLE_ENDIAN);
        out.asFloatBuffer().put(values);
        return out.array();
    }
}
