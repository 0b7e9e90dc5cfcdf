package org.fedwear.bridge.model;

import org.json.JSONException;
import org.json.JSONObject;

/** Local training settings of a plan: SGD with momentum over shuffled mini-batches. */
public final class Hyperparameters {
    public final int epochs;
    public final int batchSize;
    public final float lr;
    public final float momentum;
    public final int personalEpochs;

    public Hyperparameters(int epochs, int batchSize, float lr, float momentum, int personalEpochs) {
        if (epochs < 0 || batchSize < 1 || !(lr > 0) || !(momentum >= 0 && momentum < 1) || personalEpochs < 0) {
            throw new IllegalArgumentException("epochs >= 0, batch_size >= 1, lr > 0, 0 <= momentum < 1 and "
                    + "personal_epochs >= 0 are needed");
        }
        this.epochs = epochs;
        this.batchSize = batchSize;
        this.lr = lr;
        this.momentum = momentum;
        this.personalEpochs = personalEpochs;
    }

    /** The plan's {@code hyperparameters} object. */
    public static Hyperparameters fromJson(JSONObject raw) throws JSONException {
        return new Hyperparameters(raw.getInt("epochs"), raw.getInt("batch_size"), (float) raw.getDouble("lr"),
                (float) raw.getDouble("momentum"), raw.optInt("personal_epochs", 5));
    }
}
