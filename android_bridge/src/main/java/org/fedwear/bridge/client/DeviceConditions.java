package org.fedwear.bridge.client;

import java.util.Locale;
import java.util.function.BooleanSupplier;
import java.util.function.DoubleSupplier;

/** When a device may train: each probe is supplied by the app (BatteryManager, ConnectivityManager). */
public final class DeviceConditions {
    private BooleanSupplier isCharging;
    private BooleanSupplier isUnmetered;
    private DoubleSupplier batteryLevel;
    private boolean requireCharging;
    private boolean requireUnmetered;
    private double minBattery;

    /** Trains only while {@code probe} says the device charges. */
    public DeviceConditions requireCharging(BooleanSupplier probe) {
        isCharging = probe;
        requireCharging = true;
        return this;
    }

    /** Trains only on an unmetered network (Wi-Fi). */
    public DeviceConditions requireUnmetered(BooleanSupplier probe) {
        isUnmetered = probe;
        requireUnmetered = true;
        return this;
    }

    /** Trains only with the battery at or above {@code level} (0..1). */
    public DeviceConditions minBattery(double level, DoubleSupplier probe) {
        minBattery = level;
        batteryLevel = probe;
        return this;
    }

    /** The first unmet condition, or null. */
    public String blockedBy() {
        if (requireCharging && !isCharging.getAsBoolean()) {
            return "not charging";
        }
        if (requireUnmetered && !isUnmetered.getAsBoolean()) {
            return "metered network";
        }
        if (minBattery > 0 && batteryLevel.getAsDouble() < minBattery) {
            return String.format(Locale.ROOT, "battery below %.0f%%", minBattery * 100);
        }
        return null;
    }
}
