package org.fedwear.bridge.client;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;

import org.junit.Test;

public class DeviceConditionsTest {
    @Test
    public void theFirstUnmetConditionIsNamed() {
        boolean[] charging = {false};
        boolean[] wifi = {false};
        double[] battery = {0.1};
        DeviceConditions conditions = new DeviceConditions().requireCharging(() -> charging[0])
                .requireUnmetered(() -> wifi[0]).minBattery(0.3, () -> battery[0]);
        assertEquals("not charging", conditions.blockedBy());
        charging[0] = true;
        assertEquals("metered network", conditions.blockedBy());
        wifi[0] = true;
        assertEquals("battery below 30%", conditions.blockedBy());
        battery[0] = 0.3;
        assertNull(conditions.blockedBy());
        assertNull(new DeviceConditions().blockedBy());
    }
}
