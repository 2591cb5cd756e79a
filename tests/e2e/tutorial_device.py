#!/usr/bin/env python3
"""A device that speaks exactly as the tutorial's ESP32 firmware does, for the e2e tests.

MQTT 3.1.1, QoS 0, client id = device id, no last will; on connect it subscribes to
devices/<id>/commands/# and publishes a retained status; telemetry every interval with the
tutorial's JSON (timestamps are milliseconds since start, as millis()); commands answered
with {"device_id","command","status","timestamp"} and no "id" (reboot "accepted" then a
restart, update_interval "accepted" with the interval read as seconds, diagnostics published
then "completed", anything else "unknown_command"). Mutual TLS with the device's certificate,
the server verified against the deployment CA and its host name (paho's default with
CERT_REQUIRED: check_hostname on).

Usage: tutorial_device.py HOST PORT CA CERT KEY DEVICE_ID [MAX_SECONDS]
Prints one line per event on stdout ("connected N", "command NAME", "interval N") for the
test to wait on. Stops on SIGTERM or after MAX_SECONDS (default 300).
"""
import json
import signal
import ssl
import sys
import time

import paho.mqtt.client as mqtt

START = time.monotonic()


def millis():
    return int((time.monotonic() - START) * 1000)


def say(*words):
    print(*words, flush=True)


class Device:
    def __init__(self, host, port, ca, cert, key, device_id):
        self.host, self.port, self.id = host, port, device_id
        self.interval = 2.0
        self.connects = 0
        self.restart_at = None
        self.client = self.new_client(ca, cert, key)

    def new_client(self, ca, cert, key):
        c = mqtt.Client(client_id=self.id, clean_session=True, protocol=mqtt.MQTTv311)
        c.tls_set(ca_certs=ca, certfile=cert, keyfile=key, cert_reqs=ssl.CERT_REQUIRED,
                  tls_version=ssl.PROTOCOL_TLS_CLIENT)
        c.on_connect = self.on_connect
        c.on_message = self.on_message
        return c

    def topic(self, kind):
        return "devices/%s/%s" % (self.id, kind)

    def publish(self, kind, doc, retain=False):
        self.client.publish(self.topic(kind), json.dumps(doc), qos=0, retain=retain)

    def on_connect(self, client, userdata, flags, rc):
        if rc != 0:
            say("refused", rc)
            return
        self.connects += 1
        client.subscribe(self.topic("commands/#"), qos=0)
        self.publish("status", {"device_id": self.id, "status": "online",
                                "timestamp": millis(), "ip_address": "127.0.0.1"},
                     retain=True)
        say("connected", self.connects)

    def respond(self, command, status):
        self.publish("command_responses", {"device_id": self.id, "command": command,
                                           "status": status, "timestamp": millis()})

    def on_message(self, client, userdata, msg):
        try:
            doc = json.loads(msg.payload)
        except ValueError:
            return
        command = doc.get("command")
        if not isinstance(command, str):
            return
        say("command", command)
        if command == "reboot":
            self.respond("reboot", "accepted")
            self.restart_at = time.monotonic() + 1.0
        elif command == "update_interval":
            self.interval = float(int(doc.get("interval", 0)) or self.interval)
            say("interval", int(self.interval))
            self.respond("update_interval", "accepted")
        elif command == "diagnostics":
            self.publish("diagnostics", {
                "device_id": self.id, "uptime_ms": millis(), "free_heap": 180000,
                "wifi_rssi": -60, "wifi_ssid": "iot", "ip_address": "127.0.0.1",
                "mac_address": "24:0a:c4:00:00:01", "chip_model": "ESP32-D0WDQ6",
                "cpu_freq_mhz": 240, "flash_size_mb": 4})
            self.respond("diagnostics", "completed")
        else:
            self.respond(command, "unknown_command")

    def telemetry(self):
        self.publish("telemetry", {
            "device_id": self.id, "device_type": "temperature_sensor",
            "timestamp": millis(),
            "telemetry": {"temperature": 22.5, "humidity": 45.0},
            "metadata": {"signal_strength": -60, "free_heap": 180000,
                         "uptime_ms": millis()}})

    def run(self, max_seconds):
        stop = []
        signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
        self.client.connect(self.host, self.port, keepalive=30)
        end = time.monotonic() + max_seconds
        next_telemetry = time.monotonic()
        while not stop and time.monotonic() < end:
            self.client.loop(timeout=0.1)
            now = time.monotonic()
            if self.restart_at and now >= self.restart_at:
                # ESP.restart(): the connection just ends, and the device connects anew
                self.restart_at = None
                self.client.disconnect()
                self.client.loop(timeout=0.1)
                self.client.reconnect()
            if self.client.is_connected() and now >= next_telemetry:
                self.telemetry()
                next_telemetry = now + self.interval
        self.client.disconnect()


def main():
    if len(sys.argv) not in (7, 8):
        sys.exit(__doc__)
    host, port, ca, cert, key, device_id = sys.argv[1:7]
    max_seconds = float(sys.argv[7]) if len(sys.argv) == 8 else 300.0
    Device(host, int(port), ca, cert, key, device_id).run(max_seconds)


if __name__ == "__main__":
    main()
