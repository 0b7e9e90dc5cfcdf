package org.fedwear.bridge.client;

import java.io.File;
import java.io.IOException;
import org.fedwear.bridge.model.Manifest;
import org.fedwear.bridge.model.Trainer;

/** Opens a trainer on a downloaded bundle (on Android: {@code TfLiteTrainer::new}). */
public interface TrainerFactory {
    Trainer open(File modelFile, Manifest manifest) throws IOException;
}
