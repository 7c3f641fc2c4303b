include $(sort $(wildcard $(BR2_EXTERNAL_TINYMTA_PATH)/package/*/*.mk))
