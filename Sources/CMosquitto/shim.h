#ifndef FLEETWATCH_CMOSQUITTO_SHIM_H
#define FLEETWATCH_CMOSQUITTO_SHIM_H
#include <mosquitto.h>
#include <mqtt_protocol.h>
#endif
