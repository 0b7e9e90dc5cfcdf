"""A Java device key's public key and upload signatures, verified by Python's cryptography and by the service.

The protocol: the enrolment's device_key is the base64 DER SubjectPublicKeyInfo of an EC P-256
key; X-FedWear-Signature is a base64 DER ECDSA-SHA256 signature over
"FWSG" | u64 round id | SHA-256(payload).
"""

import base64
import hashlib
import struct
import subprocess

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from tests import bridge_java

SIGNER = """
import java.io.File;
import java.nio.file.Files;
import java.util.Base64;
import org.fedwear.bridge.client.DeviceKey;
import org.fedwear.bridge.client.FileDeviceKey;

public class SignUpload {
    public static void main(String[] args) throws Exception {
        FileDeviceKey key = FileDeviceKey.loadOrCreate(new File(args[0]));
        byte[] payload = Files.readAllBytes(new File(args[1]).toPath());
        byte[] signature = key.sign(DeviceKey.uploadMessage(Long.parseLong(args[2]), payload));
        Base64.Encoder b64 = Base64.getEncoder();
        System.out.println(b64.encodeToString(key.publicKeyDer()) + " " + b64.encodeToString(signature));
    }
}
"""


def message(round_id: int, payload: bytes) -> bytes:
    return b"FWSG" + struct.pack(">Q", round_id) + hashlib.sha256(payload).digest()


def test_python_verifies_what_a_java_device_key_signs(tmp_path):
    classpath = bridge_java.build()
    source = tmp_path / "SignUpload.java"
    source.write_text(SIGNER)
    payload = tmp_path / "payload.bin"
    payload.write_bytes(b"FWEU" + bytes(range(200)))
    proc = subprocess.run(["java", "-cp", classpath, str(source), str(tmp_path / "device-key.json"), str(payload),
                           "123456789012"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    public_b64, signature_b64 = proc.stdout.split()
    public = load_der_public_key(base64.b64decode(public_b64, validate=True))
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"
    signature = base64.b64decode(signature_b64, validate=True)
    public.verify(signature, message(123456789012, payload.read_bytes()), ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):
        public.verify(signature, message(123456789013, payload.read_bytes()), ec.ECDSA(hashes.SHA256()))


def test_a_java_device_with_its_key_and_a_python_device_take_part_in_an_attested_job(cloud, bundle_dir, tmp_path):
    import numpy as np

    from device_sim import synthetic
    from sdk.client import FedWearClient

    classpath = bridge_java.build()
    job = cloud.create_job(bundle_dir, rounds=1, min_devices=2, max_devices=2, require_attestation=True)
    token = cloud.token(job["id"], max_uses=2)
    device = synthetic.generate(subjects=1, executions=2, seed=5).devices[0]
    python = FedWearClient(cloud.url, token, tmp_path / "python")
    assert python.participate(device.windows, device.labels).status == "uploaded"
    update = tmp_path / "update.f32"
    update.write_bytes(np.full(python.plan["shared_values"], 0.001, "<f4").tobytes())

    def java(storage, *flags):
        return bridge_java.run_tool(classpath, "Participate", "--server", cloud.url, "--token", token, "--storage",
                                    tmp_path / storage, "--update", update, "--windows", 20, "--model-version", 1,
                                    *flags)

    keyless = java("keyless")
    assert keyless.returncode != 0 and "device_key_required" in keyless.stdout + keyless.stderr
    signed = java("java", "--device-key")
    assert signed.returncode == 0 and bridge_java.last_json(signed)["status"] == "uploaded", signed.stderr
    assert cloud.job(job["id"])["rounds"][0]["contributors"] == 2
    cloud.wait_for_version({"Authorization": python._credentials["authorization"]}, 2)
